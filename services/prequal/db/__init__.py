"""The PostgreSQL schema (SQLAlchemy Core tables), its Alembic migrations and their runner."""
