"""poolsieve's SQL project, installed as package data of ``poolsieve.sql`` (see poolsieve.paths)."""
