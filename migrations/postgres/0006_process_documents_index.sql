-- The evaluation looks up the documents published on a process without a contract number
-- (they count for every contract of the process). The index on proceso held every document,
-- so each lookup also visited the rows of the documents published on a contract, only to
-- drop them. It now holds only the documents the lookup wants, with the columns it reads.
-- Documents published on a contract no longer enter it when synced.
DROP INDEX documents_process;
CREATE INDEX documents_process ON documents (proceso)
    INCLUDE (id_documento, nombre_archivo, descripcion, fecha_carga)
    WHERE id_contrato IS NULL AND vanished_at IS NULL;
