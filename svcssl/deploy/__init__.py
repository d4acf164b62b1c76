"""Writing a service's files, reloading its daemon and checking what its port serves."""

from .deployer import DeployReport, deploy_files, recover_interrupted  # noqa: F401
from .layout import TargetFile, render_files  # noqa: F401
