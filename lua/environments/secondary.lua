-- The disaster-recovery region (North Europe): the geo-replica and the standby cluster.
return {
  description = "Legal platform secondary region (North Europe), failover target",
  resource_group = "rg-legal-production-secondary",
  location = "northeurope",
  namespace = "production",
  deployments = {"web", "gateway", "document-service", "ai-service", "task-service",
    "integration-service", "notification-service"},
  aks = {cluster = "aks-legal-production-secondary", node_pool = "usernodepool"},
  postgres = {server = "psql-legal-production-replica", database = "legaldb", admin_user = "adminuser",
    password_secret = "database-password"},
  redis = {name = "redis-legal-production", resource_group = "rg-legal-production",
    key_secret = "redis-primary-key"},
  keyvault = {name = "kv-legal-production"},
  appinsights = {app = "legal-platform-production", resource_group = "rg-legal-production"},
  acr = {name = "acrlegalproduction"},
  storage = {account = "stalegalproduction", backup_container = "backups"},
}
