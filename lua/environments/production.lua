-- The production platform (West Europe), as named in the runbook.
return {
  description = "Legal platform production (West Europe)",
  resource_group = "rg-legal-production",
  location = "westeurope",
  namespace = "production",
  deployments = {"web", "gateway", "document-service", "ai-service", "task-service",
    "integration-service", "notification-service"},
  aks = {cluster = "aks-legal-production", node_pool = "usernodepool"},
  postgres = {server = "psql-legal-production", database = "legaldb", admin_user = "adminuser",
    password_secret = "database-password"},
  redis = {name = "redis-legal-production", key_secret = "redis-primary-key"},
  keyvault = {name = "kv-legal-production"},
  appinsights = {app = "legal-platform-production"},
  acr = {name = "acrlegalproduction"},
  storage = {account = "stalegalproduction", backup_container = "backups"},
  secondary = "secondary",
}
