from fastapi import FastAPI

from sonata_db.bootstrap import build_app


def create_app() -> FastAPI:
    return build_app()
