"""What the routes share: the service's settings and the roles a route asks for."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from sonata_kit import Principal, require_roles

from sonata_db.settings import LibrarySettings


async def get_settings(request: Request) -> LibrarySettings:
    return cast(LibrarySettings, request.app.state.settings)


Settings = Annotated[LibrarySettings, Depends(get_settings)]
Teacher = Annotated[Principal, Depends(require_roles("teacher", "admin"))]
TeacherOnly = Annotated[Principal, Depends(require_roles("teacher"))]
Parent = Annotated[Principal, Depends(require_roles("parent"))]
