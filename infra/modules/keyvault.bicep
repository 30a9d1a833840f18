// Key Vault (RBAC, purge protection): the production source of every secret docgate reads.
// The app reads `docgate-api-keys` through shared/secrets.py (managed identity); settings
// marked secret in shared.config.SETTINGS reach the app as Key Vault references, never as
// plain app settings. No secret value is a parameter or an output of this template: the one
// secret written here is copied from Application Insights inside the deployment.

param name string
param location string
param tags object
@description('Principal id of the app identity: Key Vault Secrets User (read secret values only).')
param appPrincipalId string
@description('Optional principal (a person or pipeline) that manages secrets: Key Vault Secrets Officer.')
param adminPrincipalId string = ''
@description('Name of the Application Insights component whose connection string is stored here.')
param applicationInsightsName string

var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var secretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the Flex Consumption apps reach the vault over its public
  // endpoint (this template creates no virtual network); access is Entra ID RBAC only.
  // checkov:skip=CKV_AZURE_189: same reason: public network access is needed without a VNet.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appInsightsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: the connection string does not expire; it is rotated by
  // re-creating the component, and the app picks up a new version through its reference.
  parent: vault
  name: 'applicationinsights-connection-string'
  properties: {
    value: applicationInsights.properties.ConnectionString
    contentType: 'text/plain'
  }
}

resource appReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, secretsUser)
  scope: vault
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
  }
}

resource adminManagesSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(vault.id, adminPrincipalId, secretsOfficer)
  scope: vault
  properties: {
    principalId: adminPrincipalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficer)
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output appInsightsSecretUri string = appInsightsSecret.properties.secretUri
