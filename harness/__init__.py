"""crossres-harness: a benchmark harness for cross-resolution person re-id.

Plugins import what they need from here: the hook marker, the component
types and the errors they may raise. A regulariser composes its schedule from
:mod:`harness.steps` (steps and G's terms) and :mod:`harness.critics`
(association critics); loss functions and side-effect-free forwards are
:mod:`harness.losses`.
"""

from harness.components import BuildContext, Record, Regulariser, ReidDataset, TrainBatch
from harness.config import PROTOCOL_VERSION, ConfigError, ProtocolConfig, RunConfig
from harness.context import StepContext
from harness.errors import BadImageError, DatasetError, HarnessError, PluginError, UnknownNameError
from harness.hookspecs import hookimpl
from harness.options import Option, Search, coerce_option, log_range, read_options
from harness.pretrained import PackagedWeights
from harness.steps import Step, Term

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "BadImageError",
    "BuildContext",
    "ConfigError",
    "DatasetError",
    "HarnessError",
    "Option",
    "Search",
    "log_range",
    "PackagedWeights",
    "PluginError",
    "ProtocolConfig",
    "Record",
    "Regulariser",
    "ReidDataset",
    "RunConfig",
    "Step",
    "StepContext",
    "Term",
    "TrainBatch",
    "UnknownNameError",
    "coerce_option",
    "hookimpl",
    "read_options",
    "__version__",
]
