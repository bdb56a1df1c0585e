-- A fork's lineage in ps: "<pid>@<checkpoint id>" it was created from (docs/checkpoints.md).
ALTER TABLE processes ADD COLUMN forked_from TEXT;
