// The data storage account, shared by every region: `uploads` (documents dropped by teams; its
// BlobCreated events start ingestion through Event Grid) and ingestion's work container, plus
// the dead-letter container for blob events Event Grid could not deliver.
//
// Shared keys are off (allowSharedKeyAccess: false): every client, the Functions host included,
// signs in with the managed identity. The app reaches this account through
// `AzureWebJobsStorage__blobServiceUri` (the code reads uploads with that one connection), so the
// host's own blobs (leases, receipts, Durable lease blobs, in containers named after each region's
// task hub) live here too; queues and tables, the chatty part, are regional (runtime-storage.bicep).

param name string
param location string
param tags object
param uploadsContainer string
param workContainer string
@description('Principal id of the app identity.')
param appPrincipalId string
@description('Standard_GZRS keeps uploads through a zone and a region outage (read access after failover).')
param skuName string = 'Standard_GZRS'
@description('Days a deleted or overwritten upload can be restored (soft delete).')
param deleteRetentionDays int = 14

var deadLetterContainer = 'eventgrid-deadletter'
// Storage Blob Data Owner: the Functions host manages containers, leases and metadata on its
// AzureWebJobsStorage blob service, which is this account (see above); Contributor is not enough.
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // No virtual network in this template: Event Grid, the Front Door-fronted Flex apps and the
  // uploading teams reach the account over its public endpoint, with Entra ID only.
  // checkov:skip=CKV_AZURE_35: public endpoint, no VNet (above); shared keys are off.
  // checkov:skip=CKV_AZURE_59: public endpoint, no VNet (above); shared keys are off.
  // checkov:skip=CKV2_AZURE_33: no private endpoint without a virtual network (above).
  // checkov:skip=CKV2_AZURE_1: Microsoft-managed keys; a customer-managed key is left to the deployer.
  name: name
  // checkov:skip=CKV2_AZURE_38: soft delete is on for blobs and containers (blobServices below).
  // checkov:skip=CKV2_AZURE_40: shared key access is disabled (allowSharedKeyAccess: false).
  // checkov:skip=CKV2_AZURE_41: this template issues no SAS, and shared keys are off.
  // checkov:skip=CKV_AZURE_33: the queue service is unused on this account (queues are regional).
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: skuName }
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
  properties: {
    deleteRetentionPolicy: { enabled: true, days: deleteRetentionDays }
    containerDeleteRetentionPolicy: { enabled: true, days: deleteRetentionDays }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in [uploadsContainer, workContainer, deadLetterContainer]: {
    parent: blobs
    name: container
    properties: { publicAccess: 'None' }
  }
]

resource appOwnsBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, blobDataOwner)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deadLetterContainer string = deadLetterContainer
