-- The twin's seeded data: legaldb's schema and rows, the registry's repositories and tags,
-- the blob containers. `opsh twin reset` brings the twin back to exactly this.
local M = {}

M.database = "legaldb"
M.admin_user = "adminuser"

M.sql = [[
CREATE TABLE clients (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE cases (
  id          bigserial PRIMARY KEY,
  client_id   bigint NOT NULL REFERENCES clients(id),
  title       text NOT NULL,
  status      text NOT NULL CHECK (status IN ('open', 'pending', 'closed')),
  opened_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE documents (
  id          bigserial PRIMARY KEY,
  case_id     bigint NOT NULL REFERENCES cases(id),
  name        text NOT NULL,
  blob_path   text NOT NULL,
  size_bytes  bigint NOT NULL,
  metadata    jsonb NOT NULL DEFAULT '{}',
  uploaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE audit_events (
  id          bigserial PRIMARY KEY,
  actor       text NOT NULL,
  action      text NOT NULL,
  at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO clients (name)
  SELECT 'Client ' || g FROM generate_series(1, 50) AS g;
INSERT INTO cases (client_id, title, status, opened_at)
  SELECT 1 + (g % 50), 'Case ' || g, (ARRAY['open', 'pending', 'closed'])[1 + g % 3],
         now() - make_interval(days => g % 365)
  FROM generate_series(1, 500) AS g;
INSERT INTO documents (case_id, name, blob_path, size_bytes, metadata)
  SELECT 1 + (g % 500), 'document-' || g || '.pdf', 'documents/' || g || '.pdf', 1024 * (1 + g % 900),
         jsonb_build_object('pages', 1 + g % 40, 'confidential', g % 7 = 0)
  FROM generate_series(1, 2000) AS g;
CREATE INDEX documents_case_id ON documents (case_id);
CREATE INDEX cases_status ON cases (status);
]]

-- Repositories in the registry, each with more than ten tags so that "keep the last 10" deletes some.
M.repositories = {"legal-platform/web", "legal-platform/gateway", "legal-platform/document-service",
  "legal-platform/ai-service", "legal-platform/task-service"}
M.tags_per_repository = 12

-- Blob containers in the storage account (Azurite).
M.containers = {"backups", "k8s-backups", "tfstate-backups", "documents"}

return M
