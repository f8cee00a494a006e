-- The index on contracts.nit_entidad served only the end of a sync pass, which marks the
-- rows of the scope's entities not seen as vanished. The store holds the contracts of the
-- scope (a sync reads nothing else), so that statement reads nearly every row either way,
-- while keeping the index cost every new row an insert in the middle of a b-tree grouped by
-- entity: measured on SQLite, 12–24 % of the time to load a million contracts.
DROP INDEX contracts_nit;
