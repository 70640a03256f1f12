-- The staging platform: same shape as production, smaller, spot node pools allowed.
return {
  description = "Legal platform staging",
  resource_group = "rg-legal-staging",
  location = "westeurope",
  namespace = "staging",
  deployments = {"web", "gateway", "document-service", "ai-service", "task-service",
    "integration-service", "notification-service"},
  aks = {cluster = "aks-legal-staging", node_pool = "usernodepool"},
  postgres = {server = "psql-legal-staging", database = "legaldb", admin_user = "adminuser",
    password_secret = "database-password"},
  redis = {name = "redis-legal-staging", key_secret = "redis-primary-key"},
  keyvault = {name = "kv-legal-staging"},
  appinsights = {app = "legal-platform-staging"},
  acr = {name = "acrlegalstaging"},
  storage = {account = "stalegalstaging", backup_container = "backups"},
}
