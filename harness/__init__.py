"""crossres-harness: a benchmark harness for cross-resolution person re-id.

Plugins import what they need from here: the hook marker, the component
types and the errors they may raise.
"""

from harness.components import (
    BuildContext,
    Option,
    Record,
    Regulariser,
    ReidDataset,
    Step,
    StepContext,
    TrainBatch,
    coerce_option,
    read_options,
)
from harness.config import PROTOCOL_VERSION, ConfigError, ProtocolConfig, RunConfig
from harness.errors import BadImageError, DatasetError, HarnessError, PluginError, UnknownNameError
from harness.hookspecs import hookimpl
from harness.pretrained import PackagedWeights

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "BadImageError",
    "BuildContext",
    "ConfigError",
    "DatasetError",
    "HarnessError",
    "Option",
    "PackagedWeights",
    "PluginError",
    "ProtocolConfig",
    "Record",
    "Regulariser",
    "ReidDataset",
    "RunConfig",
    "Step",
    "StepContext",
    "TrainBatch",
    "UnknownNameError",
    "coerce_option",
    "hookimpl",
    "read_options",
    "__version__",
]
