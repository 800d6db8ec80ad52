"""What a dashboard route works with: the request, the signed-in person, and the API as that
person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from flowbus.dashboard.client import Api
from flowbus.dashboard.rendering import page
from flowbus.dashboard.session import Person, Viewer


@dataclass(frozen=True, slots=True)
class PageContext:
    request: Request
    person: Person
    api: Api

    @property
    def partial(self) -> bool:
        """An htmx request for a fragment, not a page load."""
        return self.request.headers.get("hx-request") == "true"

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return page(self.request, template, self.person, status_code=status_code, **values)


async def _context(request: Request, person: Viewer) -> PageContext:
    return PageContext(request, person, request.app.state.client.as_person(person.token))


Ctx = Annotated[PageContext, Depends(_context)]
