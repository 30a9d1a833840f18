// One region's runtime storage account: the Flex Consumption deployment package container and
// the queues and tables of the Functions host and of this region's Durable task hub
// (`AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri`). Regional, so orchestration
// polling never crosses regions and a region's outage stops only its own task hub.

param name string
param location string
param tags object
param deploymentContainer string
param appPrincipalId string

var queueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // No virtual network in this template: the Flex apps reach the account over its public
  // endpoint, with Entra ID only (shared keys are off).
  // checkov:skip=CKV_AZURE_35: public endpoint, no VNet (above).
  // checkov:skip=CKV_AZURE_59: public endpoint, no VNet (above).
  // checkov:skip=CKV2_AZURE_33: no private endpoint without a virtual network (above).
  // checkov:skip=CKV2_AZURE_1: Microsoft-managed keys; a customer-managed key is left to the deployer.
  name: name
  // checkov:skip=CKV_AZURE_206: re-creatable runtime state; a regional outage stops the app of this region anyway.
  // checkov:skip=CKV2_AZURE_38: the package is re-published by azd deploy; queues/tables have no soft delete.
  // checkov:skip=CKV2_AZURE_40: shared key access is disabled (allowSharedKeyAccess: false).
  // checkov:skip=CKV2_AZURE_41: this template issues no SAS, and shared keys are off.
  location: location
  // checkov:skip=CKV_AZURE_33: the host queue traffic is high-volume and low-value to log.
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource packages 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
  properties: { publicAccess: 'None' }
}

// Queues and tables for the host and the Durable task hub: data contributor, account scope
// (the task hub creates its queues and tables by name at start-up).
resource appUsesQueues 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, queueDataContributor)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', queueDataContributor)
  }
}

resource appUsesTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, tableDataContributor)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', tableDataContributor)
  }
}

// The deployment package: blob data contributor on that one container only.
resource appReadsPackage 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(packages.id, appPrincipalId, blobDataContributor)
  scope: packages
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
