"""Every `fmnist` sub-command; cli.py adds each one to the group."""
from .spec_commands import summary, validate

COMMANDS = [summary, validate]
