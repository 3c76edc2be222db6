-- The caller index re-reads cards changed since its last look every few
-- seconds: these keep "newest change" and "changed since" to index reads
-- instead of table scans.
CREATE INDEX contacts_updated ON contacts(updated_at);
CREATE INDEX companies_updated ON companies(updated_at);
CREATE INDEX leads_updated ON leads(updated_at);
