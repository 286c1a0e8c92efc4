"""Groups, RBAC roles and scopes: who may do what in the hub and in MLflow.

Three groups carry the platform's roles; admins are named accounts. Every account has
JupyterHub's default ``user`` role (its own server, its own tokens) and nothing more
unless a group or the admin list gives it:

=============  ==========================================================================
group / list   hub scopes (besides the default ``user`` role)
=============  ==========================================================================
researchers    MLflow through the hub; ``custom:mlflow:write`` (create experiments and
               runs, change only their own)
leads          MLflow through the hub; ``custom:mlflow:read`` (every experiment, read-only)
stewards       MLflow read; list users, their groups and activity (who has access)
admin_users    JupyterHub's ``admin`` role (admin panel, approvals) and
               ``custom:mlflow:admin`` (change or delete any MLflow object)
=============  ==========================================================================

File access (store and catalog read-only, identified data closed) is not a hub scope:
it follows from the OS account a server runs as (:mod:`gai_research.hub.boundaries`).

Services hold the least they need: the MLflow service has no hub scope at all (it only
identifies users through OAuth, and the token a user's browser gets is limited to the
``custom:mlflow:*`` scopes that user holds); the idle culler may list users, read
activity and stop servers, nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CULLER_SCOPES",
    "CULLER_SERVICE",
    "CUSTOM_SCOPES",
    "GROUPS",
    "MLFLOW_ACCESS",
    "MLFLOW_SCOPES",
    "MLFLOW_SERVICE",
    "load_groups",
    "load_roles",
    "server_token_scopes",
]

MLFLOW_SERVICE = "mlflow"
CULLER_SERVICE = "idle-culler"
MLFLOW_ACCESS = f"access:services!service={MLFLOW_SERVICE}"
GROUPS = ("researchers", "leads", "stewards")

CUSTOM_SCOPES: dict[str, dict[str, Any]] = {
    "custom:mlflow:read": {
        "description": "Read every MLflow experiment, run, model and artifact through the hub.",
    },
    "custom:mlflow:write": {
        "description": "Create MLflow experiments and runs; change or delete only your own.",
        "subscopes": ["custom:mlflow:read"],
    },
    "custom:mlflow:admin": {
        "description": "Change or delete any MLflow object, including others' runs.",
        "subscopes": ["custom:mlflow:write"],
    },
}
MLFLOW_SCOPES = tuple(CUSTOM_SCOPES)

# what jupyterhub-idle-culler documents as its needs, and no more
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")

# JupyterHub's default for $JUPYTERHUB_API_TOKEN (its 'server' role)
_SERVER_DEFAULT = ("users:activity!user", "access:servers!server")


def load_groups() -> dict[str, dict[str, Any]]:
    """The groups, created empty; admins fill them in the admin panel (or the REST API)."""
    return {name: {"users": []} for name in GROUPS}


def load_roles(admin_users: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles``: the platform's roles and the culler's."""
    return [
        {
            "name": "researcher",
            "description": "Notebooks on the pseudonymized store; MLflow: own experiments and runs",
            "scopes": [MLFLOW_ACCESS, "custom:mlflow:write"],
            "groups": ["researchers"],
        },
        {
            "name": "lead",
            "description": "Project leads: read every MLflow experiment and the reports",
            "scopes": [MLFLOW_ACCESS, "custom:mlflow:read"],
            "groups": ["leads"],
        },
        {
            "name": "steward",
            "description": "Data stewards: read MLflow; see who has access (users, groups, activity)",
            "scopes": [
                MLFLOW_ACCESS,
                "custom:mlflow:read",
                "list:users",
                "read:users:groups",
                "read:users:activity",
                "list:groups",
                "read:groups",
            ],
            "groups": ["stewards"],
        },
        {
            "name": "platform-admin",
            "description": "Platform admins: MLflow administration (the hub's admin role is separate)",
            "scopes": [MLFLOW_ACCESS, "custom:mlflow:admin"],
            "users": sorted(admin_users),
        },
        {
            "name": CULLER_SERVICE,
            "description": "Stop servers idle for longer than the timeout",
            "scopes": list(CULLER_SCOPES),
            "services": [CULLER_SERVICE],
        },
    ]


def server_token_scopes(spawner: Any = None) -> list[str]:
    """Scopes of a user server's ``$JUPYTERHUB_API_TOKEN``: the default, plus MLflow.

    The kernel hands that token to MLflow (``MLFLOW_TRACKING_TOKEN``), so notebooks log
    through the hub as their user. JupyterHub keeps only the scopes the user holds.
    """
    return [*_SERVER_DEFAULT, MLFLOW_ACCESS, *MLFLOW_SCOPES]
