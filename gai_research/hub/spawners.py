"""How a user's server starts: its account, home, environment and limits.

Two local spawners (both ``LocalProcessSpawner``; the systemd and Kubernetes ones are
configuration, see :mod:`gai_research.hub.configure` and ``deploy/``):

- :class:`DemoSpawner` runs every server as the hub's own account, in
  ``HOME/hub/users/<name>``: a single-machine demo where file permissions cannot
  separate users (as root it passes ``--allow-root``);
- :class:`LocalUserSpawner` runs each server as the OS account of the same name
  (setuid, its groups), which is what keeps identified data out of researchers' reach.

Both cap each process's address space at ``hub.mem_limit`` (``RLIMIT_AS``: a local
approximation; SystemdSpawner and KubeSpawner enforce a cgroup limit per server) and tell
numerical libraries to use ``hub.cpu_limit`` threads.

The environment (:func:`user_environment`) names the platform home, points MLflow at
the hub's MLflow service with the server's own hub token, adds the ``gai-research``
kernel and a server config without internet look-ups. It never names the key file.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode

from gai_research.hub.roles import MLFLOW_SERVICE
from gai_research.hub.state import kernels_path, server_config_path

if TYPE_CHECKING:
    from gai_research.config import Settings

__all__ = ["DemoSpawner", "LocalUserSpawner", "mlflow_url", "user_environment"]

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
)


def mlflow_url(settings: Settings) -> str:
    """The MLflow service as the user servers on this machine reach it (through the proxy)."""
    return f"{settings.hub.local_url}services/{MLFLOW_SERVICE}"


def _api_token(spawner: Any) -> str:
    return spawner.api_token


def user_environment(settings: Settings) -> dict[str, Any]:
    """``c.Spawner.environment``: the platform for notebooks, MLflow through the hub."""
    threads = str(max(1, math.ceil(settings.hub.cpu_limit)))
    env: dict[str, Any] = {
        "GAI_HOME": str(settings.home),
        "GAI_MLFLOW_URI": mlflow_url(settings),
        "MLFLOW_TRACKING_URI": mlflow_url(settings),
        "MLFLOW_TRACKING_TOKEN": _api_token,  # the server's own hub token, scoped to MLflow
        "JUPYTER_PATH": str(kernels_path()),
        "JUPYTER_CONFIG_PATH": str(server_config_path()),
        "MALLOC_ARENA_MAX": "2",  # fewer glibc arenas: less address space per thread
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
    }
    env.update(dict.fromkeys(_THREAD_VARS, threads))
    if settings.config_file is not None:
        env["GAI_CONFIG"] = str(settings.config_file)
    return env


def _limit_memory(limit: int) -> None:
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class DemoSpawner(LocalProcessSpawner):
    """Servers as the hub's account, each in ``users_root/<name>`` (the demo)."""

    users_root = Unicode(config=True, help="Folder holding one home per user.")

    @property
    def home_dir(self) -> str:
        return os.path.join(self.users_root, self.user.name)

    def make_preexec_fn(self, name: str):
        home, limit = self.home_dir, int(self.mem_limit or 0)

        def preexec() -> None:
            _limit_memory(limit)
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["USER"] = self.user.name
        env["HOME"] = self.home_dir
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if os.geteuid() == 0:
            args.append("--allow-root")
        return args


class LocalUserSpawner(LocalProcessSpawner):
    """Servers as the OS account of the same name (production on one machine).

    Homes are the accounts' own (passwd) unless ``users_root`` is set.
    """

    users_root = Unicode("", config=True, help="Folder of homes; empty: the accounts' own.")

    @property
    def home_dir(self) -> str:
        if self.users_root:
            return os.path.join(self.users_root, self.user.name)
        import pwd

        return pwd.getpwnam(self.user.name).pw_dir

    def make_preexec_fn(self, name: str):
        become = set_user_setuid(name, chdir=False)
        home, limit = self.home_dir, int(self.mem_limit or 0)

        def preexec() -> None:
            _limit_memory(limit)
            become()
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env = super().user_env(env)
        env["HOME"] = self.home_dir
        return env
