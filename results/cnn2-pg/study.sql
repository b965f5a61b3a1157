--
-- PostgreSQL database dump
--

\restrict 7HkpAsVX0n4oynRWjMT5mYTRdSIyDNyQh8JmY4f8MpUH5NgOu3g6MfUybahvZeb

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: studydirection; Type: TYPE; Schema: public; Owner: fmnist
--

CREATE TYPE public.studydirection AS ENUM (
    'NOT_SET',
    'MINIMIZE',
    'MAXIMIZE'
);


ALTER TYPE public.studydirection OWNER TO fmnist;

--
-- Name: trialintermediatevaluetype; Type: TYPE; Schema: public; Owner: fmnist
--

CREATE TYPE public.trialintermediatevaluetype AS ENUM (
    'FINITE',
    'INF_POS',
    'INF_NEG',
    'NAN'
);


ALTER TYPE public.trialintermediatevaluetype OWNER TO fmnist;

--
-- Name: trialstate; Type: TYPE; Schema: public; Owner: fmnist
--

CREATE TYPE public.trialstate AS ENUM (
    'RUNNING',
    'COMPLETE',
    'PRUNED',
    'FAIL',
    'WAITING'
);


ALTER TYPE public.trialstate OWNER TO fmnist;

--
-- Name: trialvaluetype; Type: TYPE; Schema: public; Owner: fmnist
--

CREATE TYPE public.trialvaluetype AS ENUM (
    'FINITE',
    'INF_POS',
    'INF_NEG'
);


ALTER TYPE public.trialvaluetype OWNER TO fmnist;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


ALTER TABLE public.alembic_version OWNER TO fmnist;

--
-- Name: studies; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.studies (
    study_id integer NOT NULL,
    study_name character varying(512) NOT NULL
);


ALTER TABLE public.studies OWNER TO fmnist;

--
-- Name: studies_study_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.studies_study_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.studies_study_id_seq OWNER TO fmnist;

--
-- Name: studies_study_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.studies_study_id_seq OWNED BY public.studies.study_id;


--
-- Name: study_directions; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.study_directions (
    study_direction_id integer NOT NULL,
    direction public.studydirection NOT NULL,
    study_id integer NOT NULL,
    objective integer NOT NULL
);


ALTER TABLE public.study_directions OWNER TO fmnist;

--
-- Name: study_directions_study_direction_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.study_directions_study_direction_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.study_directions_study_direction_id_seq OWNER TO fmnist;

--
-- Name: study_directions_study_direction_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.study_directions_study_direction_id_seq OWNED BY public.study_directions.study_direction_id;


--
-- Name: study_system_attributes; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.study_system_attributes (
    study_system_attribute_id integer NOT NULL,
    study_id integer,
    key character varying(512),
    value_json text
);


ALTER TABLE public.study_system_attributes OWNER TO fmnist;

--
-- Name: study_system_attributes_study_system_attribute_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.study_system_attributes_study_system_attribute_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.study_system_attributes_study_system_attribute_id_seq OWNER TO fmnist;

--
-- Name: study_system_attributes_study_system_attribute_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.study_system_attributes_study_system_attribute_id_seq OWNED BY public.study_system_attributes.study_system_attribute_id;


--
-- Name: study_user_attributes; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.study_user_attributes (
    study_user_attribute_id integer NOT NULL,
    study_id integer,
    key character varying(512),
    value_json text
);


ALTER TABLE public.study_user_attributes OWNER TO fmnist;

--
-- Name: study_user_attributes_study_user_attribute_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.study_user_attributes_study_user_attribute_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.study_user_attributes_study_user_attribute_id_seq OWNER TO fmnist;

--
-- Name: study_user_attributes_study_user_attribute_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.study_user_attributes_study_user_attribute_id_seq OWNED BY public.study_user_attributes.study_user_attribute_id;


--
-- Name: trial_heartbeats; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_heartbeats (
    trial_heartbeat_id integer NOT NULL,
    trial_id integer NOT NULL,
    heartbeat timestamp without time zone NOT NULL
);


ALTER TABLE public.trial_heartbeats OWNER TO fmnist;

--
-- Name: trial_heartbeats_trial_heartbeat_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_heartbeats_trial_heartbeat_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_heartbeats_trial_heartbeat_id_seq OWNER TO fmnist;

--
-- Name: trial_heartbeats_trial_heartbeat_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_heartbeats_trial_heartbeat_id_seq OWNED BY public.trial_heartbeats.trial_heartbeat_id;


--
-- Name: trial_intermediate_values; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_intermediate_values (
    trial_intermediate_value_id integer NOT NULL,
    trial_id integer NOT NULL,
    step integer NOT NULL,
    intermediate_value double precision,
    intermediate_value_type public.trialintermediatevaluetype NOT NULL
);


ALTER TABLE public.trial_intermediate_values OWNER TO fmnist;

--
-- Name: trial_intermediate_values_trial_intermediate_value_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_intermediate_values_trial_intermediate_value_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_intermediate_values_trial_intermediate_value_id_seq OWNER TO fmnist;

--
-- Name: trial_intermediate_values_trial_intermediate_value_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_intermediate_values_trial_intermediate_value_id_seq OWNED BY public.trial_intermediate_values.trial_intermediate_value_id;


--
-- Name: trial_params; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_params (
    param_id integer NOT NULL,
    trial_id integer,
    param_name character varying(512),
    param_value double precision,
    distribution_json text
);


ALTER TABLE public.trial_params OWNER TO fmnist;

--
-- Name: trial_params_param_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_params_param_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_params_param_id_seq OWNER TO fmnist;

--
-- Name: trial_params_param_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_params_param_id_seq OWNED BY public.trial_params.param_id;


--
-- Name: trial_system_attributes; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_system_attributes (
    trial_system_attribute_id integer NOT NULL,
    trial_id integer,
    key character varying(512),
    value_json text
);


ALTER TABLE public.trial_system_attributes OWNER TO fmnist;

--
-- Name: trial_system_attributes_trial_system_attribute_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_system_attributes_trial_system_attribute_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_system_attributes_trial_system_attribute_id_seq OWNER TO fmnist;

--
-- Name: trial_system_attributes_trial_system_attribute_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_system_attributes_trial_system_attribute_id_seq OWNED BY public.trial_system_attributes.trial_system_attribute_id;


--
-- Name: trial_user_attributes; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_user_attributes (
    trial_user_attribute_id integer NOT NULL,
    trial_id integer,
    key character varying(512),
    value_json text
);


ALTER TABLE public.trial_user_attributes OWNER TO fmnist;

--
-- Name: trial_user_attributes_trial_user_attribute_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_user_attributes_trial_user_attribute_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_user_attributes_trial_user_attribute_id_seq OWNER TO fmnist;

--
-- Name: trial_user_attributes_trial_user_attribute_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_user_attributes_trial_user_attribute_id_seq OWNED BY public.trial_user_attributes.trial_user_attribute_id;


--
-- Name: trial_values; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trial_values (
    trial_value_id integer NOT NULL,
    trial_id integer NOT NULL,
    objective integer NOT NULL,
    value double precision,
    value_type public.trialvaluetype NOT NULL
);


ALTER TABLE public.trial_values OWNER TO fmnist;

--
-- Name: trial_values_trial_value_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trial_values_trial_value_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trial_values_trial_value_id_seq OWNER TO fmnist;

--
-- Name: trial_values_trial_value_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trial_values_trial_value_id_seq OWNED BY public.trial_values.trial_value_id;


--
-- Name: trials; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.trials (
    trial_id integer NOT NULL,
    number integer,
    study_id integer,
    state public.trialstate NOT NULL,
    datetime_start timestamp without time zone,
    datetime_complete timestamp without time zone
);


ALTER TABLE public.trials OWNER TO fmnist;

--
-- Name: trials_trial_id_seq; Type: SEQUENCE; Schema: public; Owner: fmnist
--

CREATE SEQUENCE public.trials_trial_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE public.trials_trial_id_seq OWNER TO fmnist;

--
-- Name: trials_trial_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: fmnist
--

ALTER SEQUENCE public.trials_trial_id_seq OWNED BY public.trials.trial_id;


--
-- Name: version_info; Type: TABLE; Schema: public; Owner: fmnist
--

CREATE TABLE public.version_info (
    version_info_id integer NOT NULL,
    schema_version integer,
    library_version character varying(256),
    CONSTRAINT version_info_version_info_id_check CHECK ((version_info_id = 1))
);


ALTER TABLE public.version_info OWNER TO fmnist;

--
-- Name: studies study_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.studies ALTER COLUMN study_id SET DEFAULT nextval('public.studies_study_id_seq'::regclass);


--
-- Name: study_directions study_direction_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_directions ALTER COLUMN study_direction_id SET DEFAULT nextval('public.study_directions_study_direction_id_seq'::regclass);


--
-- Name: study_system_attributes study_system_attribute_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_system_attributes ALTER COLUMN study_system_attribute_id SET DEFAULT nextval('public.study_system_attributes_study_system_attribute_id_seq'::regclass);


--
-- Name: study_user_attributes study_user_attribute_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_user_attributes ALTER COLUMN study_user_attribute_id SET DEFAULT nextval('public.study_user_attributes_study_user_attribute_id_seq'::regclass);


--
-- Name: trial_heartbeats trial_heartbeat_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_heartbeats ALTER COLUMN trial_heartbeat_id SET DEFAULT nextval('public.trial_heartbeats_trial_heartbeat_id_seq'::regclass);


--
-- Name: trial_intermediate_values trial_intermediate_value_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_intermediate_values ALTER COLUMN trial_intermediate_value_id SET DEFAULT nextval('public.trial_intermediate_values_trial_intermediate_value_id_seq'::regclass);


--
-- Name: trial_params param_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_params ALTER COLUMN param_id SET DEFAULT nextval('public.trial_params_param_id_seq'::regclass);


--
-- Name: trial_system_attributes trial_system_attribute_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_system_attributes ALTER COLUMN trial_system_attribute_id SET DEFAULT nextval('public.trial_system_attributes_trial_system_attribute_id_seq'::regclass);


--
-- Name: trial_user_attributes trial_user_attribute_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_user_attributes ALTER COLUMN trial_user_attribute_id SET DEFAULT nextval('public.trial_user_attributes_trial_user_attribute_id_seq'::regclass);


--
-- Name: trial_values trial_value_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_values ALTER COLUMN trial_value_id SET DEFAULT nextval('public.trial_values_trial_value_id_seq'::regclass);


--
-- Name: trials trial_id; Type: DEFAULT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trials ALTER COLUMN trial_id SET DEFAULT nextval('public.trials_trial_id_seq'::regclass);


--
-- Data for Name: alembic_version; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.alembic_version (version_num) FROM stdin;
v3.2.0.a
\.


--
-- Data for Name: studies; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.studies (study_id, study_name) FROM stdin;
4	cnn2-pg
\.


--
-- Data for Name: study_directions; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.study_directions (study_direction_id, direction, study_id, objective) FROM stdin;
2	MAXIMIZE	4	0
\.


--
-- Data for Name: study_system_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.study_system_attributes (study_system_attribute_id, study_id, key, value_json) FROM stdin;
\.


--
-- Data for Name: study_user_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.study_user_attributes (study_user_attribute_id, study_id, key, value_json) FROM stdin;
4	4	best-trial-7-seed1	{"name": "CNN_2", "test_acc": 0.9198, "test_loss": 0.221789, "top_k_acc": {"top1": 0.9198, "top3": 0.9932, "top5": 0.9993}, "per_class_acc": {"T-shirt/top": 0.867, "Trouser": 0.979, "Pullover": 0.902, "Dress": 0.952, "Coat": 0.842, "Sandal": 0.959, "Shirt": 0.788, "Sneaker": 0.961, "Bag": 0.975, "Ankle boot": 0.973}, "per_class": {"T-shirt/top": {"precision": 0.883792, "recall": 0.867, "f1": 0.875315, "support": 1000}, "Trouser": {"precision": 0.993909, "recall": 0.979, "f1": 0.986398, "support": 1000}, "Pullover": {"precision": 0.887795, "recall": 0.902, "f1": 0.894841, "support": 1000}, "Dress": {"precision": 0.867031, "recall": 0.952, "f1": 0.907531, "support": 1000}, "Coat": {"precision": 0.917211, "recall": 0.842, "f1": 0.877998, "support": 1000}, "Sandal": {"precision": 0.987642, "recall": 0.959, "f1": 0.97311, "support": 1000}, "Shirt": {"precision": 0.780971, "recall": 0.788, "f1": 0.78447, "support": 1000}, "Sneaker": {"precision": 0.949605, "recall": 0.961, "f1": 0.955268, "support": 1000}, "Bag": {"precision": 0.988844, "recall": 0.975, "f1": 0.981873, "support": 1000}, "Ankle boot": {"precision": 0.950195, "recall": 0.973, "f1": 0.961462, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.923, "best_epoch": 9, "epochs": [{"epoch": 1, "train_loss": 0.508425, "train_acc": 0.81658, "val_loss": 0.345839, "val_acc": 0.8738, "seconds": 139.586}, {"epoch": 2, "train_loss": 0.319497, "train_acc": 0.88196, "val_loss": 0.318589, "val_acc": 0.8832, "seconds": 150.688}, {"epoch": 3, "train_loss": 0.28259, "train_acc": 0.89704, "val_loss": 0.269577, "val_acc": 0.9044, "seconds": 132.111}, {"epoch": 4, "train_loss": 0.255447, "train_acc": 0.90754, "val_loss": 0.253329, "val_acc": 0.9098, "seconds": 126.09}, {"epoch": 5, "train_loss": 0.24027, "train_acc": 0.91246, "val_loss": 0.242852, "val_acc": 0.9138, "seconds": 135.0}, {"epoch": 6, "train_loss": 0.232409, "train_acc": 0.91582, "val_loss": 0.253371, "val_acc": 0.907, "seconds": 133.768}, {"epoch": 7, "train_loss": 0.223509, "train_acc": 0.91968, "val_loss": 0.237524, "val_acc": 0.9126, "seconds": 133.494}, {"epoch": 8, "train_loss": 0.213252, "train_acc": 0.9232, "val_loss": 0.225214, "val_acc": 0.9187, "seconds": 124.089}, {"epoch": 9, "train_loss": 0.204796, "train_acc": 0.9257, "val_loss": 0.219122, "val_acc": 0.923, "seconds": 126.049}, {"epoch": 10, "train_loss": 0.198624, "train_acc": 0.92784, "val_loss": 0.214957, "val_acc": 0.9204, "seconds": 133.792}], "stopped": "completed all 10 epochs", "train_seconds": 1334.667, "startup_seconds": 0.71, "params": 4048714, "hparams": {"batch_size": 128, "lr": 0.00014210736239935758, "rs": 0.0021865347140571723, "num_epochs": 10, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 1}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1098-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "command": "*** search specs/cnn_2.yaml --storage postgresql://***:***@localhost/*** --study cnn2-pg --trials 1 --seeds 2 --augment --loss softmax --pruner hyperband --threads 1 --out runs/cnn2-pg/worker1 --results /work/main/results/cnn2-pg", "worker": "vm:8293", "run": "runs/cnn2-pg/worker1/best-trial-7-seed1"}
5	4	best-trial-7-seed0	{"name": "CNN_2", "test_acc": 0.92, "test_loss": 0.221682, "top_k_acc": {"top1": 0.92, "top3": 0.9936, "top5": 0.9991}, "per_class_acc": {"T-shirt/top": 0.87, "Trouser": 0.983, "Pullover": 0.919, "Dress": 0.925, "Coat": 0.819, "Sandal": 0.978, "Shirt": 0.809, "Sneaker": 0.981, "Bag": 0.964, "Ankle boot": 0.952}, "per_class": {"T-shirt/top": {"precision": 0.889571, "recall": 0.87, "f1": 0.879676, "support": 1000}, "Trouser": {"precision": 0.993933, "recall": 0.983, "f1": 0.988436, "support": 1000}, "Pullover": {"precision": 0.862101, "recall": 0.919, "f1": 0.889642, "support": 1000}, "Dress": {"precision": 0.910433, "recall": 0.925, "f1": 0.917659, "support": 1000}, "Coat": {"precision": 0.913043, "recall": 0.819, "f1": 0.863469, "support": 1000}, "Sandal": {"precision": 0.980943, "recall": 0.978, "f1": 0.979469, "support": 1000}, "Shirt": {"precision": 0.751859, "recall": 0.809, "f1": 0.779383, "support": 1000}, "Sneaker": {"precision": 0.940556, "recall": 0.981, "f1": 0.960352, "support": 1000}, "Bag": {"precision": 0.99793, "recall": 0.964, "f1": 0.980671, "support": 1000}, "Ankle boot": {"precision": 0.979424, "recall": 0.952, "f1": 0.965517, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.923, "best_epoch": 9, "epochs": [{"epoch": 1, "train_loss": 0.498572, "train_acc": 0.82024, "val_loss": 0.320063, "val_acc": 0.8855, "seconds": 141.524}, {"epoch": 2, "train_loss": 0.31958, "train_acc": 0.8848, "val_loss": 0.289718, "val_acc": 0.8944, "seconds": 149.934}, {"epoch": 3, "train_loss": 0.276373, "train_acc": 0.89968, "val_loss": 0.274586, "val_acc": 0.898, "seconds": 131.174}, {"epoch": 4, "train_loss": 0.257667, "train_acc": 0.90782, "val_loss": 0.239773, "val_acc": 0.9144, "seconds": 127.862}, {"epoch": 5, "train_loss": 0.23957, "train_acc": 0.91344, "val_loss": 0.255468, "val_acc": 0.9064, "seconds": 135.333}, {"epoch": 6, "train_loss": 0.230284, "train_acc": 0.917, "val_loss": 0.229769, "val_acc": 0.9175, "seconds": 133.198}, {"epoch": 7, "train_loss": 0.218216, "train_acc": 0.9209, "val_loss": 0.225823, "val_acc": 0.9187, "seconds": 133.963}, {"epoch": 8, "train_loss": 0.209292, "train_acc": 0.92486, "val_loss": 0.229331, "val_acc": 0.9174, "seconds": 124.272}, {"epoch": 9, "train_loss": 0.207753, "train_acc": 0.9248, "val_loss": 0.217583, "val_acc": 0.923, "seconds": 128.206}, {"epoch": 10, "train_loss": 0.196472, "train_acc": 0.9305, "val_loss": 0.218023, "val_acc": 0.9204, "seconds": 132.18}], "stopped": "completed all 10 epochs", "train_seconds": 1337.646, "startup_seconds": 0.75, "params": 4048714, "hparams": {"batch_size": 128, "lr": 0.00014210736239935758, "rs": 0.0021865347140571723, "num_epochs": 10, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 0}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1098-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "command": "*** search specs/cnn_2.yaml --storage postgresql://***:***@localhost/*** --study cnn2-pg --trials 1 --seeds 2 --augment --loss softmax --pruner hyperband --threads 1 --out runs/cnn2-pg/worker2 --results /work/main/results/cnn2-pg", "worker": "vm:8297", "run": "runs/cnn2-pg/worker2/best-trial-7"}
6	4	best-trial-7-seed2	{"name": "CNN_2", "test_acc": 0.9193, "test_loss": 0.22817, "top_k_acc": {"top1": 0.9193, "top3": 0.9932, "top5": 0.9989}, "per_class_acc": {"T-shirt/top": 0.898, "Trouser": 0.979, "Pullover": 0.868, "Dress": 0.9, "Coat": 0.895, "Sandal": 0.958, "Shirt": 0.784, "Sneaker": 0.937, "Bag": 0.993, "Ankle boot": 0.981}, "per_class": {"T-shirt/top": {"precision": 0.865959, "recall": 0.898, "f1": 0.881689, "support": 1000}, "Trouser": {"precision": 0.997961, "recall": 0.979, "f1": 0.98839, "support": 1000}, "Pullover": {"precision": 0.915612, "recall": 0.868, "f1": 0.89117, "support": 1000}, "Dress": {"precision": 0.942408, "recall": 0.9, "f1": 0.920716, "support": 1000}, "Coat": {"precision": 0.886139, "recall": 0.895, "f1": 0.890547, "support": 1000}, "Sandal": {"precision": 0.988648, "recall": 0.958, "f1": 0.973083, "support": 1000}, "Shirt": {"precision": 0.761905, "recall": 0.784, "f1": 0.772794, "support": 1000}, "Sneaker": {"precision": 0.959058, "recall": 0.937, "f1": 0.947901, "support": 1000}, "Bag": {"precision": 0.95942, "recall": 0.993, "f1": 0.975921, "support": 1000}, "Ankle boot": {"precision": 0.926346, "recall": 0.981, "f1": 0.95289, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.9214, "best_epoch": 10, "epochs": [{"epoch": 1, "train_loss": 0.499159, "train_acc": 0.82104, "val_loss": 0.325363, "val_acc": 0.8826, "seconds": 133.608}, {"epoch": 2, "train_loss": 0.318799, "train_acc": 0.88242, "val_loss": 0.320622, "val_acc": 0.8816, "seconds": 121.531}, {"epoch": 3, "train_loss": 0.278477, "train_acc": 0.89884, "val_loss": 0.28027, "val_acc": 0.8949, "seconds": 129.877}, {"epoch": 4, "train_loss": 0.256052, "train_acc": 0.90712, "val_loss": 0.269261, "val_acc": 0.905, "seconds": 133.162}, {"epoch": 5, "train_loss": 0.238776, "train_acc": 0.9144, "val_loss": 0.262666, "val_acc": 0.9012, "seconds": 140.268}, {"epoch": 6, "train_loss": 0.231082, "train_acc": 0.91634, "val_loss": 0.240841, "val_acc": 0.9114, "seconds": 146.553}, {"epoch": 7, "train_loss": 0.221348, "train_acc": 0.92046, "val_loss": 0.229166, "val_acc": 0.9161, "seconds": 150.051}, {"epoch": 8, "train_loss": 0.210279, "train_acc": 0.92432, "val_loss": 0.26371, "val_acc": 0.9024, "seconds": 137.352}, {"epoch": 9, "train_loss": 0.206198, "train_acc": 0.92522, "val_loss": 0.214654, "val_acc": 0.9197, "seconds": 141.602}, {"epoch": 10, "train_loss": 0.198486, "train_acc": 0.92828, "val_loss": 0.214377, "val_acc": 0.9214, "seconds": 148.226}], "stopped": "completed all 10 epochs", "train_seconds": 1382.23, "startup_seconds": 1.11, "params": 4048714, "hparams": {"batch_size": 128, "lr": 0.00014210736239935758, "rs": 0.0021865347140571723, "num_epochs": 10, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 2}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1098-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "command": "fmnist search specs/cnn_2.yaml --storage postgresql://***:***@localhost/*** --study cnn2-pg --trials 1 --seeds 3 --augment --loss softmax --threads 1 --out /work/main/runs/cnn2-pg/worker1 --results /work/main/results/cnn2-pg", "worker": "vm:20493", "run": "/work/main/runs/cnn2-pg/worker1/best-trial-7-seed2"}
\.


--
-- Data for Name: trial_heartbeats; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_heartbeats (trial_heartbeat_id, trial_id, heartbeat) FROM stdin;
11	11	2026-12-02 13:37:34.957873
15	15	2026-12-02 14:20:05.130934
19	19	2026-12-02 14:35:26.300503
13	13	2026-12-02 14:07:07.641029
10	10	2026-12-02 14:21:20.228448
29	29	2026-12-02 14:50:38.704919
12	12	2026-12-02 13:40:58.741826
7	7	2026-12-02 13:29:24.309777
14	14	2026-12-02 14:09:48.061186
20	20	2026-12-02 14:37:29.802392
8	8	2026-12-02 13:32:22.356886
6	6	2026-12-02 13:32:24.213516
28	28	2026-12-02 14:52:22.069545
17	17	2026-12-02 14:24:16.588403
9	9	2026-12-02 13:34:42.573797
30	30	2026-12-02 14:53:05.524546
22	22	2026-12-02 14:40:22.928622
18	18	2026-12-02 14:27:01.977996
16	16	2026-12-02 14:28:36.817611
23	23	2026-12-02 14:43:03.112477
21	21	2026-12-02 14:43:15.016881
24	24	2026-12-02 14:45:03.624423
25	25	2026-12-02 14:45:42.512501
26	26	2026-12-02 14:47:32.278339
27	27	2026-12-02 14:48:37.288661
\.


--
-- Data for Name: trial_intermediate_values; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_intermediate_values (trial_intermediate_value_id, trial_id, step, intermediate_value, intermediate_value_type) FROM stdin;
7	6	1	0.8701	FINITE
8	7	1	0.8792	FINITE
9	6	2	0.8763	FINITE
10	7	2	0.8908	FINITE
11	6	3	0.8891	FINITE
12	7	3	0.8865	FINITE
13	6	4	0.9015	FINITE
14	7	4	0.9018	FINITE
15	6	5	0.8959	FINITE
16	7	5	0.9086	FINITE
17	6	6	0.9077	FINITE
18	7	6	0.906	FINITE
19	6	7	0.8993	FINITE
20	7	7	0.9157	FINITE
21	6	8	0.9132	FINITE
22	8	1	0.8749	FINITE
23	6	9	0.9113	FINITE
24	9	1	0.8722	FINITE
25	10	1	0.802	FINITE
26	11	1	0.8843	FINITE
27	10	2	0.8465	FINITE
28	12	1	0.8464	FINITE
29	10	3	0.8458	FINITE
30	13	1	0.8855	FINITE
31	10	4	0.8458	FINITE
32	13	2	0.8944	FINITE
33	10	5	0.8649	FINITE
34	13	3	0.898	FINITE
35	13	4	0.9144	FINITE
36	10	6	0.8307	FINITE
37	13	5	0.9064	FINITE
38	10	7	0.8664	FINITE
39	13	6	0.9175	FINITE
40	10	8	0.6555	FINITE
41	13	7	0.9187	FINITE
42	10	9	0.8762	FINITE
43	13	8	0.9174	FINITE
44	13	9	0.923	FINITE
45	10	10	0.8769	FINITE
46	13	10	0.9204	FINITE
47	10	11	0.8796	FINITE
48	14	1	0.792	FINITE
49	10	12	0.854	FINITE
50	15	1	0.8902	FINITE
51	10	13	0.8541	FINITE
52	15	2	0.8993	FINITE
53	10	14	0.866	FINITE
54	15	3	0.9067	FINITE
55	10	15	0.8575	FINITE
56	16	1	0.8352	FINITE
57	17	1	0.8819	FINITE
58	16	2	0.8725	FINITE
59	18	1	0.8717	FINITE
60	16	3	0.881	FINITE
61	19	1	0.8797	FINITE
62	20	1	0.8899	FINITE
63	19	2	0.8892	FINITE
64	20	2	0.904	FINITE
65	19	3	0.8939	FINITE
66	20	3	0.8953	FINITE
67	21	1	0.856	FINITE
68	22	1	0.8834	FINITE
69	21	2	0.877	FINITE
70	23	1	0.8658	FINITE
71	21	3	0.883	FINITE
72	24	1	0.8566	FINITE
73	25	1	0.8117	FINITE
74	26	1	0.8402	FINITE
75	27	1	0.8803	FINITE
76	28	1	0.8782	FINITE
77	29	1	0.8702	FINITE
78	28	2	0.887	FINITE
79	30	1	0.8827	FINITE
\.


--
-- Data for Name: trial_params; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_params (param_id, trial_id, param_name, param_value, distribution_json) FROM stdin;
21	6	lr	0.0012520653814999472	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
22	6	rs	0.0013981961408994052	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
23	6	batch_size	3	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
24	6	num_epochs	9	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
25	7	lr	0.0006824078427098838	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
26	7	rs	0.0014486833887239336	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
27	7	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
28	7	num_epochs	7	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
29	8	lr	0.0007447144904083078	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
30	8	rs	1.1961308606153198e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
31	8	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
32	8	num_epochs	7	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
33	9	lr	0.001263559813738167	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
34	9	rs	0.0013318136687429966	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
35	9	batch_size	3	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
36	9	num_epochs	6	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
37	10	lr	0.008591315698733486	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
38	10	rs	0.0004382245941855636	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
39	10	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
40	10	num_epochs	15	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
41	11	lr	0.00027796258518939394	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
42	11	rs	0.00409446269461076	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
43	11	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
44	11	num_epochs	13	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
45	12	lr	0.006105486887627994	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
46	12	rs	9.906937334398726e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
47	12	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
48	12	num_epochs	10	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
49	13	lr	0.00014210736239935758	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
50	13	rs	0.0021865347140571723	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
51	13	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
52	13	num_epochs	10	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
53	14	lr	0.0055828865879781996	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
54	14	rs	0.008046777417892738	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
56	14	num_epochs	9	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
58	15	rs	0.00032034929786131427	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
60	15	num_epochs	9	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
62	16	rs	1.1541329711371676e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
64	16	num_epochs	7	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
78	20	rs	0.0003540228418540964	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
80	20	num_epochs	7	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
86	22	rs	0.0010882437347584594	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
88	22	num_epochs	11	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
90	23	rs	0.00018165507155702297	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
92	23	num_epochs	8	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
94	24	rs	0.0016124310989572151	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
96	24	num_epochs	10	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
102	26	rs	0.0069878151169355165	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
104	26	num_epochs	13	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
55	14	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
57	15	lr	0.00010489343501429875	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
59	15	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
61	16	lr	0.0034885205571560775	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
63	16	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
65	17	lr	0.000410749325286261	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
66	17	rs	8.382594988977654e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
67	17	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
68	17	num_epochs	13	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
69	18	lr	0.0004953617702375709	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
70	18	rs	0.0059119421888129626	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
71	18	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
72	18	num_epochs	9	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
73	19	lr	0.00012587341870299725	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
74	19	rs	0.008334337663451794	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
75	19	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
76	19	num_epochs	8	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
77	20	lr	0.00020592713931784804	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
79	20	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
81	21	lr	0.0011066607384042292	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
82	21	rs	0.002994913641561438	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
83	21	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
84	21	num_epochs	5	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
85	22	lr	0.0001300329655270176	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
87	22	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
89	23	lr	0.002070721531548901	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
91	23	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
93	24	lr	0.002152029511764616	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
95	24	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
97	25	lr	0.005179633314925584	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
98	25	rs	0.0037580486578581897	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
99	25	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
100	25	num_epochs	6	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
101	26	lr	0.0010133062421645615	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
103	26	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
105	27	lr	0.00042390612727276794	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
106	27	rs	0.003067814351697672	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
107	27	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
108	27	num_epochs	7	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
109	28	lr	0.000797948264512404	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
110	28	rs	0.0008694467481203499	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
111	28	batch_size	3	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
112	28	num_epochs	11	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
113	29	lr	0.0003056779478788675	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
114	29	rs	0.007623980023832636	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
115	29	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
116	29	num_epochs	6	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
117	30	lr	0.00019536888425075543	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
118	30	rs	0.001095291782312746	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
119	30	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
120	30	num_epochs	8	{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 5, "high": 15}}
\.


--
-- Data for Name: trial_system_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_system_attributes (trial_system_attribute_id, trial_id, key, value_json) FROM stdin;
5	6	completed_rung_0	0.9132
6	6	completed_rung_1	0.9132
7	8	completed_rung_0	0.8749
8	6	completed_rung_2	0.9113
9	9	completed_rung_0	0.8722
10	11	completed_rung_0	0.8843
11	12	completed_rung_0	0.8464
12	10	completed_rung_0	0.8458
13	13	completed_rung_0	0.898
14	10	completed_rung_1	0.8762
15	13	completed_rung_1	0.923
16	14	completed_rung_0	0.792
17	15	completed_rung_0	0.8902
18	15	completed_rung_1	0.9067
19	17	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.000410749325286261, \\"num_epochs\\": 13, \\"rs\\": 8.382594988977654e-05}"
20	17	completed_rung_0	0.8819
21	18	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.0004953617702375709, \\"num_epochs\\": 9, \\"rs\\": 0.0059119421888129626}"
22	18	completed_rung_0	0.8717
23	19	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.00012587341870299725, \\"num_epochs\\": 8, \\"rs\\": 0.008334337663451794}"
24	16	completed_rung_0	0.881
25	20	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.00020592713931784804, \\"num_epochs\\": 7, \\"rs\\": 0.0003540228418540964}"
26	20	completed_rung_0	0.8899
27	19	completed_rung_0	0.8939
28	21	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.0011066607384042292, \\"num_epochs\\": 5, \\"rs\\": 0.002994913641561438}"
29	20	completed_rung_1	0.8953
30	22	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.0001300329655270176, \\"num_epochs\\": 11, \\"rs\\": 0.0010882437347584594}"
31	22	completed_rung_0	0.8834
32	23	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.002070721531548901, \\"num_epochs\\": 8, \\"rs\\": 0.00018165507155702297}"
33	23	completed_rung_0	0.8658
34	24	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.002152029511764616, \\"num_epochs\\": 10, \\"rs\\": 0.0016124310989572151}"
35	21	completed_rung_0	0.883
36	25	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.005179633314925584, \\"num_epochs\\": 6, \\"rs\\": 0.0037580486578581897}"
37	24	completed_rung_0	0.8566
38	26	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.0010133062421645615, \\"num_epochs\\": 13, \\"rs\\": 0.0069878151169355165}"
39	25	completed_rung_0	0.8117
40	27	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.00042390612727276794, \\"num_epochs\\": 7, \\"rs\\": 0.003067814351697672}"
41	26	completed_rung_0	0.8402
42	28	tpe:relative_params:0	"{\\"batch_size\\": 256, \\"lr\\": 0.000797948264512404, \\"num_epochs\\": 11, \\"rs\\": 0.0008694467481203499}"
43	27	completed_rung_0	0.8803
44	29	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.0003056779478788675, \\"num_epochs\\": 6, \\"rs\\": 0.007623980023832636}"
45	29	completed_rung_0	0.8702
46	30	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.00019536888425075543, \\"num_epochs\\": 8, \\"rs\\": 0.001095291782312746}"
47	30	completed_rung_0	0.8827
\.


--
-- Data for Name: trial_user_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_user_attributes (trial_user_attribute_id, trial_id, key, value_json) FROM stdin;
6	6	worker	"vm:2873"
7	7	worker	"vm:2874"
8	8	worker	"vm:2874"
9	9	worker	"vm:2874"
10	10	worker	"vm:2873"
11	11	worker	"vm:2874"
12	12	worker	"vm:2874"
13	13	worker	"vm:2874"
14	14	worker	"vm:2874"
15	15	worker	"vm:2874"
16	16	worker	"vm:2874"
17	17	worker	"vm:2873"
18	18	worker	"vm:2873"
19	19	worker	"vm:2873"
20	20	worker	"vm:2874"
21	21	worker	"vm:2873"
22	22	worker	"vm:2874"
23	23	worker	"vm:2874"
24	24	worker	"vm:2874"
25	25	worker	"vm:2873"
26	26	worker	"vm:2874"
27	27	worker	"vm:2873"
28	28	worker	"vm:2874"
29	29	worker	"vm:2873"
30	30	worker	"vm:2873"
\.


--
-- Data for Name: trial_values; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_values (trial_value_id, trial_id, objective, value, value_type) FROM stdin;
6	7	0	0.9157000184059143	FINITE
7	8	0	0.8749	FINITE
8	6	0	0.9132000207901001	FINITE
9	9	0	0.8722	FINITE
10	11	0	0.8843	FINITE
11	12	0	0.8464	FINITE
12	13	0	0.9229999780654907	FINITE
13	14	0	0.792	FINITE
14	15	0	0.9067	FINITE
15	10	0	0.8795999884605408	FINITE
16	17	0	0.8819	FINITE
17	18	0	0.8717	FINITE
18	16	0	0.881	FINITE
19	19	0	0.8939	FINITE
20	20	0	0.8953	FINITE
21	22	0	0.8834	FINITE
22	23	0	0.8658	FINITE
23	21	0	0.883	FINITE
24	24	0	0.8566	FINITE
25	25	0	0.8117	FINITE
26	26	0	0.8402	FINITE
27	27	0	0.8803	FINITE
28	29	0	0.8702	FINITE
29	28	0	0.887	FINITE
30	30	0	0.8827	FINITE
\.


--
-- Data for Name: trials; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trials (trial_id, number, study_id, state, datetime_start, datetime_complete) FROM stdin;
27	21	4	PRUNED	2026-12-02 14:46:07.224723	2026-12-02 14:48:38.346697
29	23	4	PRUNED	2026-12-02 14:48:38.635923	2026-12-02 14:51:05.042078
28	22	4	PRUNED	2026-12-02 14:47:51.957026	2026-12-02 14:52:30.077228
7	1	4	COMPLETE	2026-12-02 13:11:53.810444	2026-12-02 13:29:51.980208
30	24	4	PRUNED	2026-12-02 14:51:05.459601	2026-12-02 14:53:31.091075
8	2	4	PRUNED	2026-12-02 13:29:52.299655	2026-12-02 13:32:42.229262
6	0	4	COMPLETE	2026-12-02 13:11:53.603665	2026-12-02 13:32:48.673238
9	3	4	PRUNED	2026-12-02 13:32:42.515264	2026-12-02 13:35:04.525424
11	5	4	PRUNED	2026-12-02 13:35:04.863214	2026-12-02 13:37:58.272467
12	6	4	PRUNED	2026-12-02 13:37:58.642445	2026-12-02 13:41:06.700998
13	7	4	COMPLETE	2026-12-02 13:41:07.009406	2026-12-02 14:07:17.720095
14	8	4	PRUNED	2026-12-02 14:07:18.000458	2026-12-02 14:10:04.412598
15	9	4	PRUNED	2026-12-02 14:10:04.804208	2026-12-02 14:20:06.224753
10	4	4	COMPLETE	2026-12-02 13:32:49.012995	2026-12-02 14:21:46.189132
17	11	4	PRUNED	2026-12-02 14:21:46.502821	2026-12-02 14:24:31.510714
18	12	4	PRUNED	2026-12-02 14:24:31.888482	2026-12-02 14:27:25.73508
16	10	4	PRUNED	2026-12-02 14:20:06.59115	2026-12-02 14:28:59.209319
19	13	4	PRUNED	2026-12-02 14:27:26.076046	2026-12-02 14:35:44.578933
20	14	4	PRUNED	2026-12-02 14:28:59.540403	2026-12-02 14:37:52.503695
22	16	4	PRUNED	2026-12-02 14:37:52.859302	2026-12-02 14:40:32.651023
23	17	4	PRUNED	2026-12-02 14:40:33.045543	2026-12-02 14:43:03.272304
21	15	4	PRUNED	2026-12-02 14:35:44.832666	2026-12-02 14:43:42.222115
24	18	4	PRUNED	2026-12-02 14:43:03.56233	2026-12-02 14:45:31.945905
25	19	4	PRUNED	2026-12-02 14:43:42.457348	2026-12-02 14:46:06.978207
26	20	4	PRUNED	2026-12-02 14:45:32.218929	2026-12-02 14:47:51.703465
\.


--
-- Data for Name: version_info; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.version_info (version_info_id, schema_version, library_version) FROM stdin;
1	12	5.1.0
\.


--
-- Name: studies_study_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.studies_study_id_seq', 10, true);


--
-- Name: study_directions_study_direction_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_directions_study_direction_id_seq', 2, true);


--
-- Name: study_system_attributes_study_system_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_system_attributes_study_system_attribute_id_seq', 1, false);


--
-- Name: study_user_attributes_study_user_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_user_attributes_study_user_attribute_id_seq', 6, true);


--
-- Name: trial_heartbeats_trial_heartbeat_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_heartbeats_trial_heartbeat_id_seq', 30, true);


--
-- Name: trial_intermediate_values_trial_intermediate_value_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_intermediate_values_trial_intermediate_value_id_seq', 79, true);


--
-- Name: trial_params_param_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_params_param_id_seq', 120, true);


--
-- Name: trial_system_attributes_trial_system_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_system_attributes_trial_system_attribute_id_seq', 47, true);


--
-- Name: trial_user_attributes_trial_user_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_user_attributes_trial_user_attribute_id_seq', 30, true);


--
-- Name: trial_values_trial_value_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_values_trial_value_id_seq', 30, true);


--
-- Name: trials_trial_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trials_trial_id_seq', 30, true);


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: studies studies_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.studies
    ADD CONSTRAINT studies_pkey PRIMARY KEY (study_id);


--
-- Name: study_directions study_directions_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_directions
    ADD CONSTRAINT study_directions_pkey PRIMARY KEY (study_direction_id);


--
-- Name: study_directions study_directions_study_id_objective_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_directions
    ADD CONSTRAINT study_directions_study_id_objective_key UNIQUE (study_id, objective);


--
-- Name: study_system_attributes study_system_attributes_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_system_attributes
    ADD CONSTRAINT study_system_attributes_pkey PRIMARY KEY (study_system_attribute_id);


--
-- Name: study_system_attributes study_system_attributes_study_id_key_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_system_attributes
    ADD CONSTRAINT study_system_attributes_study_id_key_key UNIQUE (study_id, key);


--
-- Name: study_user_attributes study_user_attributes_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_user_attributes
    ADD CONSTRAINT study_user_attributes_pkey PRIMARY KEY (study_user_attribute_id);


--
-- Name: study_user_attributes study_user_attributes_study_id_key_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_user_attributes
    ADD CONSTRAINT study_user_attributes_study_id_key_key UNIQUE (study_id, key);


--
-- Name: trial_heartbeats trial_heartbeats_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_heartbeats
    ADD CONSTRAINT trial_heartbeats_pkey PRIMARY KEY (trial_heartbeat_id);


--
-- Name: trial_heartbeats trial_heartbeats_trial_id_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_heartbeats
    ADD CONSTRAINT trial_heartbeats_trial_id_key UNIQUE (trial_id);


--
-- Name: trial_intermediate_values trial_intermediate_values_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_intermediate_values
    ADD CONSTRAINT trial_intermediate_values_pkey PRIMARY KEY (trial_intermediate_value_id);


--
-- Name: trial_intermediate_values trial_intermediate_values_trial_id_step_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_intermediate_values
    ADD CONSTRAINT trial_intermediate_values_trial_id_step_key UNIQUE (trial_id, step);


--
-- Name: trial_params trial_params_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_params
    ADD CONSTRAINT trial_params_pkey PRIMARY KEY (param_id);


--
-- Name: trial_params trial_params_trial_id_param_name_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_params
    ADD CONSTRAINT trial_params_trial_id_param_name_key UNIQUE (trial_id, param_name);


--
-- Name: trial_system_attributes trial_system_attributes_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_system_attributes
    ADD CONSTRAINT trial_system_attributes_pkey PRIMARY KEY (trial_system_attribute_id);


--
-- Name: trial_system_attributes trial_system_attributes_trial_id_key_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_system_attributes
    ADD CONSTRAINT trial_system_attributes_trial_id_key_key UNIQUE (trial_id, key);


--
-- Name: trial_user_attributes trial_user_attributes_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_user_attributes
    ADD CONSTRAINT trial_user_attributes_pkey PRIMARY KEY (trial_user_attribute_id);


--
-- Name: trial_user_attributes trial_user_attributes_trial_id_key_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_user_attributes
    ADD CONSTRAINT trial_user_attributes_trial_id_key_key UNIQUE (trial_id, key);


--
-- Name: trial_values trial_values_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_values
    ADD CONSTRAINT trial_values_pkey PRIMARY KEY (trial_value_id);


--
-- Name: trial_values trial_values_trial_id_objective_key; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_values
    ADD CONSTRAINT trial_values_trial_id_objective_key UNIQUE (trial_id, objective);


--
-- Name: trials trials_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_pkey PRIMARY KEY (trial_id);


--
-- Name: version_info version_info_pkey; Type: CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.version_info
    ADD CONSTRAINT version_info_pkey PRIMARY KEY (version_info_id);


--
-- Name: ix_studies_study_name; Type: INDEX; Schema: public; Owner: fmnist
--

CREATE UNIQUE INDEX ix_studies_study_name ON public.studies USING btree (study_name);


--
-- Name: ix_trials_study_id; Type: INDEX; Schema: public; Owner: fmnist
--

CREATE INDEX ix_trials_study_id ON public.trials USING btree (study_id);


--
-- Name: study_directions study_directions_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_directions
    ADD CONSTRAINT study_directions_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.studies(study_id);


--
-- Name: study_system_attributes study_system_attributes_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_system_attributes
    ADD CONSTRAINT study_system_attributes_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.studies(study_id);


--
-- Name: study_user_attributes study_user_attributes_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.study_user_attributes
    ADD CONSTRAINT study_user_attributes_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.studies(study_id);


--
-- Name: trial_heartbeats trial_heartbeats_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_heartbeats
    ADD CONSTRAINT trial_heartbeats_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trial_intermediate_values trial_intermediate_values_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_intermediate_values
    ADD CONSTRAINT trial_intermediate_values_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trial_params trial_params_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_params
    ADD CONSTRAINT trial_params_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trial_system_attributes trial_system_attributes_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_system_attributes
    ADD CONSTRAINT trial_system_attributes_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trial_user_attributes trial_user_attributes_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_user_attributes
    ADD CONSTRAINT trial_user_attributes_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trial_values trial_values_trial_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trial_values
    ADD CONSTRAINT trial_values_trial_id_fkey FOREIGN KEY (trial_id) REFERENCES public.trials(trial_id);


--
-- Name: trials trials_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: fmnist
--

ALTER TABLE ONLY public.trials
    ADD CONSTRAINT trials_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.studies(study_id);


--
-- PostgreSQL database dump complete
--

\unrestrict 7HkpAsVX0n4oynRWjMT5mYTRdSIyDNyQh8JmY4f8MpUH5NgOu3g6MfUybahvZeb

