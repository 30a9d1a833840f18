// docgate on Azure: `azd up` deploys this. One Function App (Flex Consumption, Python 3.11) per
// region in `regions`, active-active behind Front Door; Cosmos DB with multi-region writes;
// shared data storage with Event Grid blob events; Key Vault; Application Insights; Azure
// OpenAI per region (or existing endpoints); Document Intelligence, Vision and optionally
// Content Safety. No keys: one user-assigned identity with least-privilege role assignments.
// See README "Deploy to Azure" and docs/multi-region.md.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Azure regions, 1 to N, primary first: one Function App and one Azure OpenAI account per region; Cosmos writes in all; the data account, AI services and monitoring live in the primary.')
param regions array

@description('Principal id of the deployer (azd sets it): Key Vault Secrets Officer, to add docgate-api-keys.')
param principalId string = ''

@description('Chat model deployments in each region: [{model, version, capacity (thousands of tokens per minute), tiers}].')
param chatModels array = [
  { model: 'gpt-4o-mini', version: '2024-07-18', capacity: 50, tiers: ['economy', 'standard'] }
  { model: 'gpt-4o', version: '2024-11-20', capacity: 20, tiers: ['premium'] }
]
param embeddingModel string = 'text-embedding-3-small'
param embeddingModelVersion string = '1'
param embeddingCapacity int = 100
@description('Chunk vector size: AZURE_OPENAI_EMBEDDING_DIMENSIONS and the chunks container\'s vector policy.')
param embeddingDimensions int = 1536

@description('Existing Azure OpenAI endpoints, one per region in the same order, instead of new accounts ([] = create them). Grant the app identity "Cognitive Services OpenAI User" on each yourself.')
param existingOpenAiEndpoints array = []

@description('LLM_PRICES (USD per 1K tokens, the model of each tier); {} = no cost routing and no budgets.')
param llmPrices object = {
  models: {
    'gpt-4o-mini': { input_per_1k: json('0.00015'), output_per_1k: json('0.0006') }
    'gpt-4o': { input_per_1k: json('0.0025'), output_per_1k: json('0.01') }
  }
  tiers: {
    economy: { '*': 'gpt-4o-mini' }
    standard: { '*': 'gpt-4o-mini' }
    premium: { '*': 'gpt-4o' }
  }
}
@description('BUDGETS (per tenant and user, daily and monthly USD); {} = none.')
param budgets object = {}
param cacheTtlSeconds int = 86400

@description('Entra ID app registration (client) id of the API: AUTH_CLIENT_ID. Empty: only API keys from Key Vault.')
param authClientId string = ''
@description('AUTH_TENANTS: {"<Entra tenant id>": "<docgate tenant>"}.')
param authTenants object = {}
@description('ANSWER_ALLOWED_HOSTS: hosts answers may link to.')
param answerAllowedHosts string = ''

param deployContentSafety bool = false
@description('Image Analysis captions exist in a few regions only; empty = the primary region.')
param visionLocation string = ''

@description('Index in `regions` of the app that ingests uploads (the one Event Grid subscriber). Change it to move ingestion off a failed region.')
param ingestionRegionIndex int = 0

@description('Set by the azd postdeploy hook once the code is deployed: creates the Event Grid subscription to the blob trigger webhook.')
param subscribeBlobWebhook bool = false

@description('E-mail addresses the alerts notify (README "Operate").')
param alertEmails array = []
@description('Webhooks the alerts notify: [{name, uri}] (common alert schema).')
param alertWebhooks array = []
@description('Alert when model cost over an hour exceeds this many USD.')
param costPerHourUsd int = 20

param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
param cosmosMaxThroughput int = 1000
param cosmosZoneRedundant bool = false
param storageSku string = 'Standard_GZRS'

var primary = regions[0]
var token = toLower(uniqueString(subscription().id, environmentName, primary))
var tags = { 'azd-env-name': environmentName, application: 'docgate' }
var uploadsContainer = 'uploads'
var workContainer = 'ingest-work'
var cosmosDatabase = 'docgate'
var createOpenAi = empty(existingOpenAiEndpoints)
var modelCount = length(chatModels)

// Every (region, chat model) pair is one LLM_REGIONS target. Endpoints of new accounts follow
// from their custom subdomains, so every app can list every region without waiting on outputs.
var llmTargets = [
  for k in range(0, length(regions) * modelCount): {
    name: '${regions[k / modelCount]}-${chatModels[k % modelCount].model}'
    endpoint: createOpenAi ? 'https://oai-${token}-${k / modelCount}.openai.azure.com/' : existingOpenAiEndpoints[k / modelCount]
    deployment: chatModels[k % modelCount].model
    model: chatModels[k % modelCount].model
    regionIndex: k / modelCount
    tiers: chatModels[k % modelCount].tiers
  }
]

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: primary
  tags: tags
}

module identity 'modules/identity.bicep' = {
  scope: group
  name: 'identity'
  params: { name: 'id-docgate-${token}', location: primary, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  scope: group
  name: 'monitoring'
  params: {
    logAnalyticsName: 'log-${token}'
    applicationInsightsName: 'appi-${token}'
    location: primary
    tags: tags
  }
}

module vault 'modules/keyvault.bicep' = {
  scope: group
  name: 'keyvault'
  params: {
    name: 'kv-${token}'
    location: primary
    tags: tags
    appPrincipalId: identity.outputs.principalId
    adminPrincipalId: principalId
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module data 'modules/storage.bicep' = {
  scope: group
  name: 'storage'
  params: {
    name: 'st${token}'
    location: primary
    tags: tags
    uploadsContainer: uploadsContainer
    workContainer: workContainer
    appPrincipalId: identity.outputs.principalId
    skuName: storageSku
  }
}

module cosmos 'modules/cosmos.bicep' = {
  scope: group
  name: 'cosmos'
  params: {
    accountName: 'cosmos-${token}'
    databaseName: cosmosDatabase
    regions: regions
    tags: tags
    appPrincipalId: identity.outputs.principalId
    cacheTtlSeconds: cacheTtlSeconds
    embeddingDimensions: embeddingDimensions
    maxThroughput: cosmosMaxThroughput
    zoneRedundant: cosmosZoneRedundant
  }
}

module ai 'modules/ai-services.bicep' = {
  scope: group
  name: 'ai-services'
  params: {
    namePrefix: 'ai-${token}'
    location: primary
    visionLocation: empty(visionLocation) ? primary : visionLocation
    tags: tags
    appPrincipalId: identity.outputs.principalId
    deployContentSafety: deployContentSafety
  }
}

module openai 'modules/openai.bicep' = [
  for (region, index) in regions: if (createOpenAi) {
    scope: group
    name: 'openai-${index}'
    params: {
      name: 'oai-${token}-${index}'
      location: region
      tags: tags
      appPrincipalId: identity.outputs.principalId
      chatModels: chatModels
      embeddingModel: embeddingModel
      embeddingModelVersion: embeddingModelVersion
      embeddingCapacity: embeddingCapacity
    }
  }
]

module runtime 'modules/runtime-storage.bicep' = [
  for (region, index) in regions: {
    scope: group
    name: 'runtime-${index}'
    params: {
      name: 'strt${take(token, 15)}${index}'
      location: region
      tags: tags
      deploymentContainer: 'app-package'
      appPrincipalId: identity.outputs.principalId
    }
  }
]

module frontDoorProfile 'modules/frontdoor-profile.bicep' = {
  scope: group
  name: 'frontdoor-profile'
  params: { name: 'afd-${token}', tags: tags }
}

module apps 'modules/function-app.bicep' = [
  for (region, index) in regions: {
    scope: group
    name: 'app-${index}'
    params: {
      name: 'func-docgate-${token}-${index}'
      planName: 'plan-docgate-${token}-${index}'
      location: region
      tags: tags
      azdServiceName: index == 0 ? 'api' : ''
      identityId: identity.outputs.id
      identityClientId: identity.outputs.clientId
      runtimeBlobEndpoint: runtime[index].outputs.blobEndpoint
      runtimeQueueEndpoint: runtime[index].outputs.queueEndpoint
      runtimeTableEndpoint: runtime[index].outputs.tableEndpoint
      deploymentContainer: 'app-package'
      dataBlobEndpoint: data.outputs.blobEndpoint
      uploadsContainer: uploadsContainer
      workContainer: workContainer
      taskHubName: 'docgate${index}'
      keyVaultUri: vault.outputs.uri
      appInsightsSecretUri: vault.outputs.appInsightsSecretUri
      cosmosEndpoint: cosmos.outputs.endpoint
      cosmosDatabase: cosmosDatabase
      documentIntelligenceEndpoint: ai.outputs.documentIntelligenceEndpoint
      visionEndpoint: ai.outputs.visionEndpoint
      contentSafetyEndpoint: ai.outputs.contentSafetyEndpoint
      embeddingEndpoint: llmTargets[index * modelCount].endpoint
      embeddingDeployment: embeddingModel
      embeddingModel: embeddingModel
      embeddingDimensions: embeddingDimensions
      llmTargets: llmTargets
      homeIndex: index
      regionCount: length(regions)
      llmPrices: llmPrices
      budgets: budgets
      cacheTtlSeconds: cacheTtlSeconds
      authClientId: authClientId
      authTenants: authTenants
      answerAllowedHosts: answerAllowedHosts
      frontDoorId: frontDoorProfile.outputs.frontDoorId
      instanceMemoryMB: instanceMemoryMB
      maximumInstanceCount: maximumInstanceCount
    }
    dependsOn: [openai, vault, cosmos]
  }
]

module frontDoor 'modules/frontdoor.bicep' = {
  scope: group
  name: 'frontdoor'
  params: {
    profileName: frontDoorProfile.outputs.name
    endpointName: 'docgate-${token}'
    tags: tags
    originHostNames: [for (region, index) in regions: apps[index].outputs.defaultHostName]
  }
}

// Blob events from uploads go to one app only (ingestionRegionIndex, the primary by default):
// two subscribers would start two ingestions of one blob in two task hubs
// (docs/multi-region.md, "Ingestion").
module events 'modules/eventgrid.bicep' = {
  scope: group
  name: 'eventgrid'
  params: {
    name: 'evgt-${token}'
    location: primary
    tags: tags
    storageAccountId: data.outputs.id
    storageAccountName: data.outputs.name
    uploadsContainer: uploadsContainer
    deadLetterContainer: data.outputs.deadLetterContainer
    functionAppName: apps[ingestionRegionIndex].outputs.name
    functionAppHostName: apps[ingestionRegionIndex].outputs.defaultHostName
    subscribeWebhook: subscribeBlobWebhook
  }
}

module alerts 'modules/alerts.bicep' = {
  scope: group
  name: 'alerts'
  params: {
    namePrefix: 'docgate-${token}'
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmails: alertEmails
    alertWebhooks: alertWebhooks
    costPerHourUsd: costPerHourUsd
  }
}

module workbook 'modules/workbook.bicep' = {
  scope: group
  name: 'workbook'
  params: {
    location: primary
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

// What azd and the hooks read (azd env get-values). Names and URLs only: nothing secret.
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = apps[0].outputs.name
output DOCGATE_INGESTION_APP_NAME string = apps[ingestionRegionIndex].outputs.name
output AZURE_FUNCTION_APP_NAMES array = [for (region, index) in regions: apps[index].outputs.name]
output DOCGATE_URL string = 'https://${frontDoor.outputs.hostName}/api'
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_STORAGE_ACCOUNT string = data.outputs.name
output AZURE_COSMOS_ENDPOINT string = cosmos.outputs.endpoint
