-- Run once, when the PostgreSQL volume is first initialised (compose.yaml): Prefect owns
-- the database `prefect`, Loopline's registry gets its own (each keeps its own migrations).
CREATE DATABASE registry OWNER loopline;
