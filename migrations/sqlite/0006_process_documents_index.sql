-- The evaluation looks up the documents published on a process without a contract number
-- (they count for every contract of the process), one process at a time. The index on
-- proceso held every document, so each lookup also visited the rows of the documents
-- published on a contract, only to drop them. It now holds only the documents the lookup
-- wants, with every column the lookup names (the last two are always NULL here, but SQLite
-- reads a table row for any column an index lacks), so that it never visits the table: on a
-- store of 1,000,000 contracts and 3,000,000 documents, the lookups for all contracts took
-- 1.9 s instead of 4.1 s (sqlite3, the file mapped). Documents published on a contract no
-- longer enter it when synced.
DROP INDEX documents_process;
CREATE INDEX documents_process
    ON documents (proceso, id_documento, nombre_archivo, descripcion, fecha_carga, id_contrato,
                  vanished_at)
    WHERE id_contrato IS NULL AND vanished_at IS NULL;
