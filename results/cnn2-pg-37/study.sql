--
-- PostgreSQL database dump
--

\restrict pxsG4CZfZyCit7H0jbTok7Op8WAEORBbUjizGPtmKSbHbxs9g2IlCgzSYUCngJl

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
1	cnn2-pg-37
\.


--
-- Data for Name: study_directions; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.study_directions (study_direction_id, direction, study_id, objective) FROM stdin;
1	MAXIMIZE	1	0
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
1	1	best-trial-9-seed1	{"name": "CNN_2", "test_acc": 0.9264, "test_loss": 0.21032, "top_k_acc": {"top1": 0.9264, "top3": 0.9953, "top5": 0.999}, "per_class_acc": {"T-shirt/top": 0.901, "Trouser": 0.98, "Pullover": 0.918, "Dress": 0.922, "Coat": 0.948, "Sandal": 0.976, "Shirt": 0.703, "Sneaker": 0.976, "Bag": 0.98, "Ankle boot": 0.96}, "per_class": {"T-shirt/top": {"precision": 0.854028, "recall": 0.901, "f1": 0.876886, "support": 1000}, "Trouser": {"precision": 0.996948, "recall": 0.98, "f1": 0.988401, "support": 1000}, "Pullover": {"precision": 0.881844, "recall": 0.918, "f1": 0.899559, "support": 1000}, "Dress": {"precision": 0.926633, "recall": 0.922, "f1": 0.924311, "support": 1000}, "Coat": {"precision": 0.841918, "recall": 0.948, "f1": 0.891816, "support": 1000}, "Sandal": {"precision": 0.983871, "recall": 0.976, "f1": 0.97992, "support": 1000}, "Shirt": {"precision": 0.877653, "recall": 0.703, "f1": 0.780677, "support": 1000}, "Sneaker": {"precision": 0.945736, "recall": 0.976, "f1": 0.96063, "support": 1000}, "Bag": {"precision": 0.989899, "recall": 0.98, "f1": 0.984925, "support": 1000}, "Ankle boot": {"precision": 0.974619, "recall": 0.96, "f1": 0.967254, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.9277, "best_epoch": 8, "epochs": [{"epoch": 1, "train_loss": 0.460103, "train_acc": 0.83088, "val_loss": 0.303993, "val_acc": 0.8886, "seconds": 164.395}, {"epoch": 2, "train_loss": 0.30208, "train_acc": 0.88826, "val_loss": 0.267816, "val_acc": 0.9025, "seconds": 166.407}, {"epoch": 3, "train_loss": 0.263641, "train_acc": 0.90304, "val_loss": 0.249234, "val_acc": 0.9075, "seconds": 155.202}, {"epoch": 4, "train_loss": 0.237548, "train_acc": 0.9126, "val_loss": 0.263802, "val_acc": 0.9056, "seconds": 161.566}, {"epoch": 5, "train_loss": 0.221025, "train_acc": 0.91922, "val_loss": 0.233682, "val_acc": 0.9133, "seconds": 150.464}, {"epoch": 6, "train_loss": 0.20413, "train_acc": 0.92564, "val_loss": 0.213021, "val_acc": 0.9234, "seconds": 146.048}, {"epoch": 7, "train_loss": 0.193592, "train_acc": 0.92858, "val_loss": 0.205947, "val_acc": 0.9235, "seconds": 145.979}, {"epoch": 8, "train_loss": 0.185168, "train_acc": 0.93194, "val_loss": 0.203609, "val_acc": 0.9277, "seconds": 142.696}, {"epoch": 9, "train_loss": 0.176024, "train_acc": 0.935045, "val_loss": 0.215484, "val_acc": 0.9242, "seconds": 147.311}], "stopped": "the budget of 23 min is spent: it bought 8.99 epochs (14,057 steps) on AMD EPYC (AVX-512 with bf16), 1 thread", "budget": {"minutes": 23.0, "spent_seconds": 1380.06, "epochs": 8.994, "steps": 14057, "machine": "AMD EPYC (AVX-512 with bf16), 1 thread"}, "train_seconds": 1380.068, "startup_seconds": 0.79, "params": 4048714, "hparams": {"batch_size": 32, "lr": 0.00010489343501429875, "rs": 0.00032034929786131427, "num_epochs": 10000, "budget": 23.0, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 1, "sync_bn": true}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "val_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "world_size": 1, "command": "fmnist search specs/cnn_2.yaml --storage postgresql://fmnist:***@localhost/fmnist --study cnn2-pg-37 --trials 1 --seeds 3 --budget 23m --fidelity images --augment --loss softmax --pruner halving --threads 1 --out runs/cnn2-pg-37/worker2 --results results/cnn2-pg-37", "worker": "vm:15401", "run": "runs/cnn2-pg-37/worker2/best-trial-9-seed1"}
2	1	best-trial-9-seed0	{"name": "CNN_2", "test_acc": 0.9278, "test_loss": 0.203088, "top_k_acc": {"top1": 0.9278, "top3": 0.995, "top5": 0.9994}, "per_class_acc": {"T-shirt/top": 0.89, "Trouser": 0.987, "Pullover": 0.901, "Dress": 0.913, "Coat": 0.936, "Sandal": 0.987, "Shirt": 0.748, "Sneaker": 0.972, "Bag": 0.982, "Ankle boot": 0.962}, "per_class": {"T-shirt/top": {"precision": 0.880317, "recall": 0.89, "f1": 0.885132, "support": 1000}, "Trouser": {"precision": 0.990964, "recall": 0.987, "f1": 0.988978, "support": 1000}, "Pullover": {"precision": 0.901, "recall": 0.901, "f1": 0.901, "support": 1000}, "Dress": {"precision": 0.932584, "recall": 0.913, "f1": 0.922688, "support": 1000}, "Coat": {"precision": 0.837959, "recall": 0.936, "f1": 0.88427, "support": 1000}, "Sandal": {"precision": 0.979167, "recall": 0.987, "f1": 0.983068, "support": 1000}, "Shirt": {"precision": 0.830189, "recall": 0.748, "f1": 0.786954, "support": 1000}, "Sneaker": {"precision": 0.955752, "recall": 0.972, "f1": 0.963808, "support": 1000}, "Bag": {"precision": 0.992922, "recall": 0.982, "f1": 0.987431, "support": 1000}, "Ankle boot": {"precision": 0.979633, "recall": 0.962, "f1": 0.970737, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.93, "best_epoch": 8, "epochs": [{"epoch": 1, "train_loss": 0.454061, "train_acc": 0.83492, "val_loss": 0.306079, "val_acc": 0.8902, "seconds": 164.197}, {"epoch": 2, "train_loss": 0.29876, "train_acc": 0.89116, "val_loss": 0.2771, "val_acc": 0.8993, "seconds": 157.757}, {"epoch": 3, "train_loss": 0.258933, "train_acc": 0.90438, "val_loss": 0.250832, "val_acc": 0.9067, "seconds": 150.081}, {"epoch": 4, "train_loss": 0.2379, "train_acc": 0.91332, "val_loss": 0.25284, "val_acc": 0.9111, "seconds": 151.447}, {"epoch": 5, "train_loss": 0.218464, "train_acc": 0.92126, "val_loss": 0.219953, "val_acc": 0.9184, "seconds": 151.978}, {"epoch": 6, "train_loss": 0.207292, "train_acc": 0.92452, "val_loss": 0.21024, "val_acc": 0.9236, "seconds": 149.215}, {"epoch": 7, "train_loss": 0.193384, "train_acc": 0.92854, "val_loss": 0.213999, "val_acc": 0.922, "seconds": 143.74}, {"epoch": 8, "train_loss": 0.183527, "train_acc": 0.93296, "val_loss": 0.19563, "val_acc": 0.93, "seconds": 148.004}, {"epoch": 9, "train_loss": 0.175359, "train_acc": 0.93558, "val_loss": 0.195293, "val_acc": 0.9285, "seconds": 148.044}, {"epoch": 10, "train_loss": 0.169018, "train_acc": 0.93536, "val_loss": 0.201242, "val_acc": 0.9285, "seconds": 15.592}], "stopped": "the budget of 23 min is spent: it bought 9.09 epochs (14,213 steps) on AMD EPYC (AVX-512 with bf16), 1 thread", "budget": {"minutes": 23.0, "spent_seconds": 1380.04, "epochs": 9.093, "steps": 14213, "machine": "AMD EPYC (AVX-512 with bf16), 1 thread"}, "train_seconds": 1380.055, "startup_seconds": 0.7, "params": 4048714, "hparams": {"batch_size": 32, "lr": 0.00010489343501429875, "rs": 0.00032034929786131427, "num_epochs": 10000, "budget": 23.0, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 0, "sync_bn": true}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "val_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "world_size": 1, "command": "fmnist search specs/cnn_2.yaml --storage postgresql://fmnist:***@localhost/fmnist --study cnn2-pg-37 --trials 1 --seeds 3 --budget 23m --fidelity images --augment --loss softmax --pruner halving --threads 1 --out runs/cnn2-pg-37/worker1 --results results/cnn2-pg-37", "worker": "vm:15397", "run": "runs/cnn2-pg-37/worker1/best-trial-9"}
3	1	best-trial-9-seed2	{"name": "CNN_2", "test_acc": 0.9255, "test_loss": 0.212042, "top_k_acc": {"top1": 0.9255, "top3": 0.9945, "top5": 0.9992}, "per_class_acc": {"T-shirt/top": 0.901, "Trouser": 0.976, "Pullover": 0.9, "Dress": 0.925, "Coat": 0.927, "Sandal": 0.972, "Shirt": 0.728, "Sneaker": 0.99, "Bag": 0.988, "Ankle boot": 0.948}, "per_class": {"T-shirt/top": {"precision": 0.862201, "recall": 0.901, "f1": 0.881174, "support": 1000}, "Trouser": {"precision": 0.997955, "recall": 0.976, "f1": 0.986855, "support": 1000}, "Pullover": {"precision": 0.901804, "recall": 0.9, "f1": 0.900901, "support": 1000}, "Dress": {"precision": 0.916749, "recall": 0.925, "f1": 0.920856, "support": 1000}, "Coat": {"precision": 0.850459, "recall": 0.927, "f1": 0.887081, "support": 1000}, "Sandal": {"precision": 0.990826, "recall": 0.972, "f1": 0.981323, "support": 1000}, "Shirt": {"precision": 0.832, "recall": 0.728, "f1": 0.776533, "support": 1000}, "Sneaker": {"precision": 0.932203, "recall": 0.99, "f1": 0.960233, "support": 1000}, "Bag": {"precision": 0.987013, "recall": 0.988, "f1": 0.987506, "support": 1000}, "Ankle boot": {"precision": 0.986472, "recall": 0.948, "f1": 0.966854, "support": 1000}}, "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"], "best_val_acc": 0.9282, "best_epoch": 8, "epochs": [{"epoch": 1, "train_loss": 0.457866, "train_acc": 0.83026, "val_loss": 0.346544, "val_acc": 0.8677, "seconds": 149.012}, {"epoch": 2, "train_loss": 0.297444, "train_acc": 0.8919, "val_loss": 0.288278, "val_acc": 0.8942, "seconds": 147.587}, {"epoch": 3, "train_loss": 0.257883, "train_acc": 0.90444, "val_loss": 0.267539, "val_acc": 0.9032, "seconds": 143.972}, {"epoch": 4, "train_loss": 0.23641, "train_acc": 0.91376, "val_loss": 0.225096, "val_acc": 0.9194, "seconds": 146.997}, {"epoch": 5, "train_loss": 0.217541, "train_acc": 0.92028, "val_loss": 0.223033, "val_acc": 0.919, "seconds": 145.893}, {"epoch": 6, "train_loss": 0.204196, "train_acc": 0.92472, "val_loss": 0.215006, "val_acc": 0.9234, "seconds": 144.088}, {"epoch": 7, "train_loss": 0.194277, "train_acc": 0.92928, "val_loss": 0.217207, "val_acc": 0.9233, "seconds": 148.856}, {"epoch": 8, "train_loss": 0.182837, "train_acc": 0.93348, "val_loss": 0.203845, "val_acc": 0.9282, "seconds": 143.587}, {"epoch": 9, "train_loss": 0.175489, "train_acc": 0.93562, "val_loss": 0.196666, "val_acc": 0.9269, "seconds": 142.271}, {"epoch": 10, "train_loss": 0.164861, "train_acc": 0.938982, "val_loss": 0.213792, "val_acc": 0.9219, "seconds": 67.781}], "stopped": "the budget of 23 min is spent: it bought 9.46 epochs (14,784 steps) on AMD EPYC (AVX-512 with bf16), 1 thread", "budget": {"minutes": 23.0, "spent_seconds": 1380.03, "epochs": 9.459, "steps": 14784, "machine": "AMD EPYC (AVX-512 with bf16), 1 thread"}, "train_seconds": 1380.044, "startup_seconds": 0.51, "params": 4048714, "hparams": {"batch_size": 32, "lr": 0.00010489343501429875, "rs": 0.00032034929786131427, "num_epochs": 10000, "budget": 23.0, "dropout": null, "loss": "softmax", "augment": true, "crop_pad": 1, "flip": true, "erase": 0.0, "mixup": null, "cutmix": null, "optimizer": "adam", "momentum": 0.9, "nesterov": false, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "patience": null, "ema": null, "clip_grad": null, "tta": false, "seed": 2, "sync_bn": true}, "device": "cpu", "data": {"dataset": "fashion-mnist", "choice": {"name": "fashion-mnist"}, "source": "Debian package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist", "verified": true, "check": "magic numbers, sizes, labels and the published MD5s (fmnist)", "data_dir": null, "train_limit": null, "val_limit": null, "train": 50000, "validation": 10000, "test": 10000, "contents": null, "input": [1, 28, 28], "light_on_black": true, "normalization": null}, "speed": {"fast": true, "precision": "bf16"}, "versions": {"fmnist": "0.1.0", "torch": "2.14.1+cu130", "python": "3.11.7"}, "machine": {"platform": "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36", "processor": "x86_64", "threads": 1, "cpu": "AMD EPYC", "cpu_class": "AVX-512 with bf16"}, "world_size": 1, "command": "fmnist search specs/cnn_2.yaml --storage postgresql://fmnist:***@localhost/fmnist --study cnn2-pg-37 --trials 1 --seeds 3 --budget 23m --fidelity images --augment --loss softmax --pruner halving --threads 1 --out runs/cnn2-pg-37/worker2 --results results/cnn2-pg-37", "worker": "vm:15401", "run": "runs/cnn2-pg-37/worker2/best-trial-9-seed2"}
\.


--
-- Data for Name: trial_heartbeats; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_heartbeats (trial_heartbeat_id, trial_id, heartbeat) FROM stdin;
20	20	2026-12-07 05:28:26.686431
12	12	2026-12-07 04:46:07.615775
6	6	2026-12-07 04:18:17.668451
5	5	2026-12-07 04:05:36.438106
11	11	2026-12-07 04:33:15.92049
1	1	2026-12-07 03:54:23.10096
18	18	2026-12-07 05:14:49.785379
23	23	2026-12-07 05:29:40.949847
15	15	2026-12-07 05:15:46.768103
7	7	2026-12-07 04:21:58.219529
14	14	2026-12-07 05:02:57.949789
25	25	2026-12-07 05:30:16.255638
24	24	2026-12-07 05:30:41.90932
3	3	2026-12-07 03:57:54.14758
10	10	2026-12-07 05:03:47.707647
19	19	2026-12-07 05:18:25.583904
8	8	2026-12-07 04:25:38.136757
2	2	2026-12-07 04:26:54.276564
4	4	2026-12-07 04:02:05.77693
16	16	2026-12-07 05:07:26.139961
9	9	2026-12-07 04:29:30.796543
21	21	2026-12-07 05:22:14.292539
17	17	2026-12-07 05:11:06.979775
13	13	2026-12-07 04:59:03.620573
22	22	2026-12-07 05:25:58.464033
\.


--
-- Data for Name: trial_intermediate_values; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_intermediate_values (trial_intermediate_value_id, trial_id, step, intermediate_value, intermediate_value_type) FROM stdin;
1	2	5555	0.8870999813079834	FINITE
2	1	5555	0.8779000043869019	FINITE
3	3	5555	0.8758999705314636	FINITE
4	4	5555	0.8763999938964844	FINITE
5	2	16666	0.9017000198364258	FINITE
6	5	5555	0.8140000104904175	FINITE
7	6	5555	0.8863000273704529	FINITE
8	6	16666	0.8982999920845032	FINITE
9	7	5555	0.8324000239372253	FINITE
10	8	5555	0.883899986743927	FINITE
11	9	5555	0.8140000104904175	FINITE
12	10	5555	0.8884999752044678	FINITE
13	11	5555	0.8582000136375427	FINITE
14	12	5555	0.8841000199317932	FINITE
15	10	16666	0.9150000214576721	FINITE
16	12	16666	0.9128999710083008	FINITE
17	13	5555	0.885200023651123	FINITE
18	13	16666	0.914900004863739	FINITE
19	14	5555	0.883400022983551	FINITE
20	15	5555	0.8853999972343445	FINITE
21	16	5555	0.8668000102043152	FINITE
22	17	5555	0.8827999830245972	FINITE
23	18	5555	0.8743000030517578	FINITE
24	15	16666	0.9136000275611877	FINITE
25	19	5555	0.8597999811172485	FINITE
26	20	5555	0.8895000219345093	FINITE
27	21	5555	0.8303999900817871	FINITE
28	22	5555	0.8774999976158142	FINITE
29	20	16666	0.9050999879837036	FINITE
30	23	5555	0.8815000057220459	FINITE
\.


--
-- Data for Name: trial_params; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_params (param_id, trial_id, param_name, param_value, distribution_json) FROM stdin;
1	1	lr	0.0012520653814999472	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
2	1	rs	0.0013981961408994052	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
3	1	batch_size	3	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
4	2	lr	0.0006824078427098838	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
5	2	rs	0.0014486833887239336	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
6	2	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
7	3	lr	0.0007447144904083078	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
8	3	rs	1.1961308606153198e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
9	3	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
10	4	lr	0.001263559813738167	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
11	4	rs	0.0013318136687429966	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
12	4	batch_size	3	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
13	5	lr	0.008591315698733486	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
14	5	rs	0.0004382245941855636	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
15	5	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
16	6	lr	0.00027796258518939394	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
17	6	rs	0.00409446269461076	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
18	6	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
19	7	lr	0.006105486887627994	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
20	7	rs	9.906937334398726e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
21	7	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
22	8	lr	0.00014210736239935758	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
23	8	rs	0.0021865347140571723	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
24	8	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
25	9	lr	0.0055828865879781996	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
26	9	rs	0.008046777417892738	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
27	9	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
28	10	lr	0.00010489343501429875	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
29	10	rs	0.00032034929786131427	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
30	10	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
31	11	lr	0.0034885205571560775	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
32	11	rs	1.1541329711371676e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
33	11	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
34	12	lr	0.00045164573308092114	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
35	12	rs	0.0001477064718680275	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
36	12	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
37	13	lr	0.00028527594491423077	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
38	13	rs	7.938276475566231e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
39	13	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
40	14	lr	0.00017598235389630878	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
41	14	rs	2.3955120520254018e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
42	14	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
43	15	lr	0.00038609273851813417	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
44	15	rs	0.0004820012392140283	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
45	15	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
46	16	lr	0.0016450581416785127	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
47	16	rs	0.00029121552558511194	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
48	16	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
49	17	lr	0.00013057661133943698	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
50	17	rs	0.0006138698826095055	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
51	17	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
52	18	lr	0.00037434839801369556	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
53	18	rs	0.0011587260614584903	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
54	18	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
56	19	rs	0.003313487866209458	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
61	21	lr	0.003909019278888478	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
63	21	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
64	22	lr	0.0008665506427176388	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
66	22	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
67	23	lr	0.00022409683626884905	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
69	23	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
73	25	lr	0.0003779185239996486	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
75	25	batch_size	2	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
55	19	lr	0.002444663935651824	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
57	19	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
58	20	lr	0.00014782710198382536	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
59	20	rs	0.00023140326354790044	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
60	20	batch_size	1	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
62	21	rs	0.0009131962701599294	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
65	22	rs	5.792991500914112e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
68	23	rs	0.0002590982224506616	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
70	24	lr	0.00048553970252261815	{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.01, "log": true}}
71	24	rs	0.00020732258755603824	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
72	24	batch_size	0	{"name": "CategoricalDistribution", "attributes": {"choices": [32, 64, 128, 256]}}
74	25	rs	2.7396516749574632e-05	{"name": "FloatDistribution", "attributes": {"step": null, "low": 1e-05, "high": 0.01, "log": true}}
\.


--
-- Data for Name: trial_system_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_system_attributes (trial_system_attribute_id, trial_id, key, value_json) FROM stdin;
1	2	completed_rung_0	0.8870999813079834
2	1	completed_rung_0	0.8779000043869019
3	3	completed_rung_0	0.8758999705314636
4	4	completed_rung_0	0.8763999938964844
5	2	completed_rung_1	0.9017000198364258
6	5	completed_rung_0	0.8140000104904175
7	6	completed_rung_0	0.8863000273704529
8	6	completed_rung_1	0.8982999920845032
9	7	completed_rung_0	0.8324000239372253
10	8	completed_rung_0	0.883899986743927
11	9	completed_rung_0	0.8140000104904175
12	10	completed_rung_0	0.8884999752044678
13	11	completed_rung_0	0.8582000136375427
14	12	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.00045164573308092114, \\"rs\\": 0.0001477064718680275}"
15	12	completed_rung_0	0.8841000199317932
16	10	completed_rung_1	0.9150000214576721
17	12	completed_rung_1	0.9128999710083008
18	13	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.00028527594491423077, \\"rs\\": 7.938276475566231e-05}"
19	13	completed_rung_0	0.885200023651123
20	13	completed_rung_1	0.914900004863739
21	14	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.00017598235389630878, \\"rs\\": 2.3955120520254018e-05}"
22	14	completed_rung_0	0.883400022983551
23	15	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.00038609273851813417, \\"rs\\": 0.0004820012392140283}"
24	16	tpe:relative_params:0	"{\\"batch_size\\": 32, \\"lr\\": 0.0016450581416785127, \\"rs\\": 0.00029121552558511194}"
25	15	completed_rung_0	0.8853999972343445
26	16	completed_rung_0	0.8668000102043152
27	17	tpe:relative_params:0	"{\\"batch_size\\": 32, \\"lr\\": 0.00013057661133943698, \\"rs\\": 0.0006138698826095055}"
28	17	completed_rung_0	0.8827999830245972
29	18	tpe:relative_params:0	"{\\"batch_size\\": 32, \\"lr\\": 0.00037434839801369556, \\"rs\\": 0.0011587260614584903}"
30	18	completed_rung_0	0.8743000030517578
31	19	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.002444663935651824, \\"rs\\": 0.003313487866209458}"
32	15	completed_rung_1	0.9136000275611877
33	20	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.00014782710198382536, \\"rs\\": 0.00023140326354790044}"
34	19	completed_rung_0	0.8597999811172485
35	21	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.003909019278888478, \\"rs\\": 0.0009131962701599294}"
36	20	completed_rung_0	0.8895000219345093
37	21	completed_rung_0	0.8303999900817871
38	22	tpe:relative_params:0	"{\\"batch_size\\": 64, \\"lr\\": 0.0008665506427176388, \\"rs\\": 5.792991500914112e-05}"
39	22	completed_rung_0	0.8774999976158142
40	23	tpe:relative_params:0	"{\\"batch_size\\": 32, \\"lr\\": 0.00022409683626884905, \\"rs\\": 0.0002590982224506616}"
41	20	completed_rung_1	0.9050999879837036
42	24	tpe:relative_params:0	"{\\"batch_size\\": 32, \\"lr\\": 0.00048553970252261815, \\"rs\\": 0.00020732258755603824}"
43	23	completed_rung_0	0.8815000057220459
44	25	tpe:relative_params:0	"{\\"batch_size\\": 128, \\"lr\\": 0.0003779185239996486, \\"rs\\": 2.7396516749574632e-05}"
\.


--
-- Data for Name: trial_user_attributes; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_user_attributes (trial_user_attribute_id, trial_id, key, value_json) FROM stdin;
1	1	worker	"vm:13030"
2	2	worker	"vm:13034"
3	3	worker	"vm:13030"
4	4	worker	"vm:13030"
5	5	worker	"vm:13030"
6	6	worker	"vm:13030"
7	7	worker	"vm:13030"
8	8	worker	"vm:13030"
9	9	worker	"vm:13030"
10	10	worker	"vm:13034"
11	11	worker	"vm:13030"
12	12	worker	"vm:13030"
13	13	worker	"vm:13030"
14	14	worker	"vm:13030"
15	15	worker	"vm:13030"
16	16	worker	"vm:13034"
17	17	worker	"vm:13034"
18	18	worker	"vm:13034"
19	19	worker	"vm:13034"
20	20	worker	"vm:13030"
21	21	worker	"vm:13034"
22	22	worker	"vm:13034"
23	23	worker	"vm:13034"
24	24	worker	"vm:13030"
25	25	worker	"vm:13034"
\.


--
-- Data for Name: trial_values; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trial_values (trial_value_id, trial_id, objective, value, value_type) FROM stdin;
1	1	0	0.8779000043869019	FINITE
2	3	0	0.8758999705314636	FINITE
3	4	0	0.8763999938964844	FINITE
4	5	0	0.8140000104904175	FINITE
5	6	0	0.8982999920845032	FINITE
6	7	0	0.8324000239372253	FINITE
7	8	0	0.883899986743927	FINITE
8	2	0	0.9253000020980835	FINITE
9	9	0	0.8140000104904175	FINITE
10	11	0	0.8582000136375427	FINITE
11	12	0	0.9128999710083008	FINITE
12	13	0	0.914900004863739	FINITE
13	14	0	0.883400022983551	FINITE
14	10	0	0.9300000071525574	FINITE
15	16	0	0.8668000102043152	FINITE
16	17	0	0.8827999830245972	FINITE
17	18	0	0.8743000030517578	FINITE
18	15	0	0.9136000275611877	FINITE
19	19	0	0.8597999811172485	FINITE
20	21	0	0.8303999900817871	FINITE
21	22	0	0.8774999976158142	FINITE
22	20	0	0.9050999879837036	FINITE
23	23	0	0.8815000057220459	FINITE
\.


--
-- Data for Name: trials; Type: TABLE DATA; Schema: public; Owner: fmnist
--

COPY public.trials (trial_id, number, study_id, state, datetime_start, datetime_complete) FROM stdin;
1	0	1	PRUNED	2026-12-07 03:50:22.976111	2026-12-07 03:54:23.814492
3	2	1	PRUNED	2026-12-07 03:54:24.06244	2026-12-07 03:58:05.40662
4	3	1	PRUNED	2026-12-07 03:58:05.663199	2026-12-07 04:02:06.003503
5	4	1	PRUNED	2026-12-07 04:02:06.328463	2026-12-07 04:05:47.110001
6	5	1	PRUNED	2026-12-07 04:05:47.367349	2026-12-07 04:18:27.904431
7	6	1	PRUNED	2026-12-07 04:18:28.143987	2026-12-07 04:22:07.805035
8	7	1	PRUNED	2026-12-07 04:22:08.046403	2026-12-07 04:26:00.505125
2	1	1	COMPLETE	2026-12-07 03:50:23.435285	2026-12-07 04:27:16.616883
9	8	1	PRUNED	2026-12-07 04:26:00.727414	2026-12-07 04:29:45.609096
11	10	1	PRUNED	2026-12-07 04:29:45.839652	2026-12-07 04:33:37.104975
12	11	1	PRUNED	2026-12-07 04:33:37.337604	2026-12-07 04:46:32.994297
13	12	1	PRUNED	2026-12-07 04:46:33.283003	2026-12-07 04:59:27.572055
14	13	1	PRUNED	2026-12-07 04:59:27.84424	2026-12-07 05:03:16.162362
10	9	1	COMPLETE	2026-12-07 04:27:16.84374	2026-12-07 05:03:55.794956
16	15	1	PRUNED	2026-12-07 05:03:56.026795	2026-12-07 05:07:36.577259
17	16	1	PRUNED	2026-12-07 05:07:36.878706	2026-12-07 05:11:19.381203
18	17	1	PRUNED	2026-12-07 05:11:19.68524	2026-12-07 05:14:55.233535
15	14	1	PRUNED	2026-12-07 05:03:16.437252	2026-12-07 05:15:56.116525
19	18	1	PRUNED	2026-12-07 05:14:55.48186	2026-12-07 05:18:43.892806
21	20	1	PRUNED	2026-12-07 05:18:44.191896	2026-12-07 05:22:28.075619
22	21	1	PRUNED	2026-12-07 05:22:28.373762	2026-12-07 05:26:10.598108
20	19	1	PRUNED	2026-12-07 05:15:56.360694	2026-12-07 05:28:41.627769
23	22	1	PRUNED	2026-12-07 05:26:10.84401	2026-12-07 05:29:45.959979
25	24	1	PRUNED	2026-12-07 05:29:46.235686	2026-12-07 05:30:29.827737
24	23	1	PRUNED	2026-12-07 05:28:41.869244	2026-12-07 05:30:46.045943
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

SELECT pg_catalog.setval('public.studies_study_id_seq', 4, true);


--
-- Name: study_directions_study_direction_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_directions_study_direction_id_seq', 1, true);


--
-- Name: study_system_attributes_study_system_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_system_attributes_study_system_attribute_id_seq', 1, false);


--
-- Name: study_user_attributes_study_user_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.study_user_attributes_study_user_attribute_id_seq', 3, true);


--
-- Name: trial_heartbeats_trial_heartbeat_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_heartbeats_trial_heartbeat_id_seq', 25, true);


--
-- Name: trial_intermediate_values_trial_intermediate_value_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_intermediate_values_trial_intermediate_value_id_seq', 30, true);


--
-- Name: trial_params_param_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_params_param_id_seq', 75, true);


--
-- Name: trial_system_attributes_trial_system_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_system_attributes_trial_system_attribute_id_seq', 44, true);


--
-- Name: trial_user_attributes_trial_user_attribute_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_user_attributes_trial_user_attribute_id_seq', 25, true);


--
-- Name: trial_values_trial_value_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trial_values_trial_value_id_seq', 23, true);


--
-- Name: trials_trial_id_seq; Type: SEQUENCE SET; Schema: public; Owner: fmnist
--

SELECT pg_catalog.setval('public.trials_trial_id_seq', 25, true);


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

\unrestrict pxsG4CZfZyCit7H0jbTok7Op8WAEORBbUjizGPtmKSbHbxs9g2IlCgzSYUCngJl

