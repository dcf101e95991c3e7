"""The studio's web pages: server-rendered (Jinja2), small vendored JS, forms with CSRF tokens.

| module | holds |
|---|---|
| ``render`` | templates, signed image links for pages, sign-in checks, form reading with CSRF |
| ``auth`` | sign in (throttled), sign out |
| ``views`` | calendar (week, month), feed grid, approval queue, post page (live), status |
| ``actions`` | a person's actions on a post from a page (approve, reject, regenerate …) |
| ``forms`` | influencers, characters, calendars, imports and targets, errors beside fields |
"""

from admin.studio.pages.actions import actions_router
from admin.studio.pages.auth import auth_router
from admin.studio.pages.forms import forms_router
from admin.studio.pages.render import render_error
from admin.studio.pages.targets import targets_router
from admin.studio.pages.views import views_router

__all__ = [
    "PAGE_ROUTERS",
    "render_error",
]

PAGE_ROUTERS = (auth_router, views_router, actions_router, forms_router, targets_router)
