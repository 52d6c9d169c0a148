"""Who may read what: the owner, a linked teacher or parent, or an admin. Nobody else."""

from __future__ import annotations

from sonata_kit import NotFound, Principal

from sonata_db.adapters.documents import Link, PieceDoc


def is_admin(principal: Principal) -> bool:
    return "admin" in principal.roles


async def teachers_of(student_id: str) -> list[str]:
    links = await Link.find(Link.student_id == student_id, Link.relation == "teacher").to_list()
    return [link.guardian_id for link in links]


async def is_linked(guardian_id: str, student_id: str, relation: str) -> bool:
    link = await Link.find_one(
        Link.guardian_id == guardian_id,
        Link.student_id == student_id,
        Link.relation == relation,
    )
    return link is not None


async def can_read_piece(piece: PieceDoc, principal: Principal) -> bool:
    if piece.visibility == "public" or is_admin(principal):
        return True
    if piece.owner_id is None:
        return False
    if piece.owner_id == principal.user_id:
        return True
    return await is_linked(piece.owner_id, principal.user_id, "teacher")


async def require_guardian(principal: Principal, student_id: str, relation: str) -> None:
    """The same answer for "not your student" and "no such user", so ids cannot be probed."""
    if not await is_linked(principal.user_id, student_id, relation):
        raise NotFound(
            f"no such {'student' if relation == 'teacher' else 'child'}", code="not_linked"
        )
