"""Sign-up with admin approval (NativeAuthenticator), with the platform's hardening.

What this adds to ``nativeauthenticator.NativeAuthenticator``:

- **No account is approved by its name.** Upstream approves a sign-up at once when the
  name is in ``admin_users``: whoever signs up first as ``admin`` would be admin. Here
  only the admin list's *bootstrap* accounts exist pre-approved, created with a
  generated password from a 0600 file (``gai hub --demo`` / ``--admin NAME``).
- **Approving is not a cross-site GET.** Upstream approves and discards users with a
  plain GET link; a page on another site could make an admin's browser follow it.
  Browsers say where a request comes from (``Sec-Fetch-Site``): anything but
  ``same-origin`` is refused. (Clients that are not browsers send no such header and
  cannot be driven by another site.)
- **It works with JupyterHub 6.** nativeauthenticator 1.3's login handler still times
  logins with ``self.statsd``, which JupyterHub 6 removed (every login POST failed with
  500), and its page renderer ignored the ``sync`` flag JupyterHub 6 uses to render a
  failed login; :class:`_Login` is that handler without both problems.
- **New accounts join a group.** An approved account that is in no group joins
  ``default_group`` (``researchers``) when the hub first sees it; admins move people to
  ``leads`` or ``stewards`` in the admin panel.
"""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import DiscardHandler, LoginHandler, ToggleAuthorizationHandler
from nativeauthenticator.orm import UserInfo
from sqlalchemy.orm import object_session
from tornado import web
from tornado.escape import url_escape
from tornado.httputil import url_concat
from traitlets import Dict, Unicode

__all__ = ["GaiNativeAuthenticator"]


def _same_site_only(handler: web.RequestHandler) -> None:
    site = handler.request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        raise web.HTTPError(403, "approvals must be made from the hub's own pages")


class _ToggleAuthorization(ToggleAuthorizationHandler):
    async def get(self, slug: str) -> None:
        _same_site_only(self)
        await super().get(slug)


class _Discard(DiscardHandler):
    async def get(self, user_name: str) -> None:
        _same_site_only(self)
        await super().get(user_name)


class _Login(LoginHandler):
    """nativeauthenticator's login page and form, for JupyterHub 6 (no statsd; sync renders)."""

    def _render(self, login_error=None, username=None, sync=False, **kwargs):
        return self.render_template(
            "native-login.html",
            sync=sync,
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=self.authenticator.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup,
            two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(
                self.authenticator.login_url(self.hub.base_url),
                {"next": self.get_argument("next", "")},
            ),
        )

    async def post(self) -> None:
        data = {arg: self.get_argument(arg, strip=False) for arg in self.request.arguments}
        data.setdefault("username", "")
        data.setdefault("password", "")
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        error = "Invalid username or password."
        username = data.get("username", "")
        info = self.authenticator.get_user(username)
        if (
            info is not None
            and not info.is_authorized
            and info.is_valid_password(data.get("password", ""))
        ):
            error = f"User {username} has not been approved by an administrator yet."
        self.finish(await self._render(login_error=error, username=username))


class GaiNativeAuthenticator(NativeAuthenticator):
    """NativeAuthenticator with bootstrap admins, same-site approvals and a default group."""

    bootstrap_admins = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="Admin name -> file (0600) holding its first password. The account is created, "
        "approved, when it does not exist yet; an existing one is never changed.",
    )
    default_group = Unicode(
        "researchers",
        allow_none=True,
        config=True,
        help="Group an account that is in no group joins when the hub first sees it.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._bootstrap()

    def _bootstrap(self) -> None:
        for name, file in self.bootstrap_admins.items():
            name = self.normalize_username(name)
            if UserInfo.find(self.db, name) is not None:
                continue
            path = Path(file)
            if not path.is_file() or stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise ValueError(f"bootstrap password file {path} is missing or not 0600")
            password = path.read_text(encoding="utf-8").strip()
            if len(password) < self.minimum_password_length:
                raise ValueError(f"bootstrap password in {path} is too short")
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
            self.db.commit()
            self.log.info("Created the bootstrap admin account %s", name)

    def get_authed_users(self) -> set[str]:
        """Approved accounts only: a name on the admin list is not an approval."""
        approved = {info.username for info in UserInfo.all_users(self.db) if info.is_authorized}
        return approved | set(self.allowed_users)

    def get_handlers(self, app) -> list[tuple[str, type]]:
        replace = {
            LoginHandler: _Login,
            ToggleAuthorizationHandler: _ToggleAuthorization,
            DiscardHandler: _Discard,
        }
        return [(route, replace.get(cls, cls)) for route, cls in super().get_handlers(app)]

    def add_user(self, user) -> None:
        super().add_user(user)
        if not self.default_group or getattr(user, "admin", False):
            return
        orm_user = getattr(user, "orm_user", user)
        db = object_session(orm_user)
        if db is None or orm_user.groups:
            return
        from jupyterhub import orm

        group = orm.Group.find(db, self.default_group)
        if group is not None:
            orm_user.groups.append(group)
            db.commit()
            self.log.info("Added %s to the group %s", orm_user.name, group.name)
