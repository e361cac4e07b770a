"""prequal-api: accepts loan applications and answers their status (DESIGN.md, HTTP API).

Layers: `main` (entrypoint) → `app` (composition root) → `routes` (HTTP handlers) →
`submission` / `status` (use cases) → `repository` (SQL over psycopg 3 async).
"""
