// One region's docgate: a Flex Consumption plan and Function App (Linux, Python 3.11) running as
// the shared user-assigned identity, with every setting the app needs in Azure. Settings the
// code marks secret are Key Vault references; none is a plain value. The app accepts traffic
// only from this deployment's Front Door profile and Event Grid (blob events).

param name string
param planName string
param location string
param tags object
@description('Resource id and client id of the user-assigned identity.')
param identityId string
param identityClientId string
@description('This region\'s runtime storage (runtime-storage.bicep).')
param runtimeBlobEndpoint string
param runtimeQueueEndpoint string
param runtimeTableEndpoint string
param deploymentContainer string
@description('The shared data account\'s blob endpoint (uploads and ingestion\'s work container).')
param dataBlobEndpoint string
param uploadsContainer string
param workContainer string
@description('This region\'s Durable task hub: distinct per region (they share the data account\'s blob service).')
param taskHubName string
param keyVaultUri string
param appInsightsSecretUri string
param cosmosEndpoint string
param cosmosDatabase string
param documentIntelligenceEndpoint string
param visionEndpoint string
param contentSafetyEndpoint string
param embeddingEndpoint string
param embeddingDeployment string
param embeddingModel string
param embeddingDimensions int
@description('Every LLM target: [{name, endpoint, deployment, model, regionIndex, tiers}].')
param llmTargets array
@description('Index of this app\'s region in the regions list: its own region gets priority 0.')
param homeIndex int
param regionCount int
param llmPrices object
param budgets object
param cacheTtlSeconds int
param authClientId string
param authTenants object
param answerAllowedHosts string
@description('Front Door profile id (the X-Azure-FDID header): only this profile may call the app.')
param frontDoorId string
param instanceMemoryMB int
param maximumInstanceCount int
@description('azd deploys the service to the app tagged with it (the primary region\'s).')
param azdServiceName string = ''

// Each app lists every LLM target, its own region first: priority = distance from home in the
// regions list, so region i prefers i, then i+1, ..., wrapping around.
var llmRegions = [
  for target in llmTargets: {
    name: target.name
    endpoint: target.endpoint
    deployment: target.deployment
    model: target.model
    priority: ((target.regionIndex - homeIndex) + regionCount) % regionCount
    tiers: target.tiers
  }
]

var appSettings = {
  PYTHON_ENABLE_INIT_INDEXING: '1'
  // Identity-based AzureWebJobsStorage: blobs on the shared data account (the code reads
  // uploads through this connection), queues and tables on the runtime account of this region.
  AzureWebJobsStorage__blobServiceUri: dataBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: runtimeQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: runtimeTableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureFunctionsJobHost__extensions__durableTask__hubName: taskHubName
  UPLOADS_CONTAINER: uploadsContainer
  UPLOADS_TRIGGER_SOURCE: 'EventGrid'
  WORK_CONTAINER: workContainer
  AZURE_CLIENT_ID: identityClientId
  KEY_VAULT_URL: keyVaultUri
  APPLICATIONINSIGHTS_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${appInsightsSecretUri})'
  OTEL_SERVICE_NAME: 'docgate'
  COSMOS_ENDPOINT: cosmosEndpoint
  COSMOS_DATABASE: cosmosDatabase
  COSMOS_EMULATOR: 'false'
  DOCGATE_CREATE_RESOURCES: 'false'
  RETRIEVAL_MODE: 'cosmos'
  CACHE_TTL_SECONDS: string(cacheTtlSeconds)
  DOCUMENT_INTELLIGENCE_ENDPOINT: documentIntelligenceEndpoint
  VISION_ENDPOINT: visionEndpoint
  CONTENT_SAFETY_ENDPOINT: contentSafetyEndpoint
  AZURE_OPENAI_EMBEDDING_ENDPOINT: embeddingEndpoint
  AZURE_OPENAI_EMBEDDING_DEPLOYMENT: embeddingDeployment
  AZURE_OPENAI_EMBEDDING_MODEL: embeddingModel
  AZURE_OPENAI_EMBEDDING_DIMENSIONS: string(embeddingDimensions)
  LLM_REGIONS: string(llmRegions)
  LLM_PRICES: empty(llmPrices) ? '' : string(llmPrices)
  BUDGETS: empty(budgets) ? '' : string(budgets)
  AUTH_CLIENT_ID: authClientId
  AUTH_TENANTS: empty(authTenants) ? '' : string(authTenants)
  // Only Front Door reaches the app (access restrictions): its socket address is the client's.
  AUTH_CLIENT_ADDRESS_HEADER: 'X-Azure-SocketIP'
  ANSWER_ALLOWED_HOSTS: answerAllowedHosts
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists in a subset of regions
  // only; resilience here comes from the other regions behind Front Door (docs/multi-region.md).
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: docgate validates Entra ID tokens itself (shared/security/auth.py).
  // checkov:skip=CKV_AZURE_56: same as CKV_AZURE_13; /api/health must stay anonymous for probes.
  // checkov:skip=CKV_AZURE_17: clients authenticate with Entra ID bearer tokens, not certificates.
  // checkov:skip=CKV_AZURE_222: Front Door and Event Grid need it; access restrictions admit only them.
  name: name
  // checkov:skip=CKV_AZURE_212: Flex scales from zero; failover is to another region (Front Door).
  // checkov:skip=CKV_AZURE_213: Flex has no App Service health check; Front Door probes /api/health.
  location: location
  tags: empty(azdServiceName) ? tags : union(tags, { 'azd-service-name': azdServiceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      ipSecurityRestrictionsDefaultAction: 'Deny'
      ipSecurityRestrictions: [
        {
          name: 'front-door'
          action: 'Allow'
          priority: 100
          tag: 'ServiceTag'
          ipAddress: 'AzureFrontDoor.Backend'
          headers: { 'x-azure-fdid': [frontDoorId] }
        }
        {
          name: 'event-grid'
          action: 'Allow'
          priority: 110
          tag: 'ServiceTag'
          ipAddress: 'AzureEventGrid'
        }
      ]
      // azd deploys through the SCM endpoint: it keeps its own (default: allow) rules.
      scmIpSecurityRestrictionsUseMain: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${runtimeBlobEndpoint}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads this app-settings resource as a site configuration; its web-app checks are
  // answered on `site` above or do not apply to a Flex Consumption Python app:
  // checkov:skip=CKV_AZURE_13: see `site` (docgate authenticates Entra ID tokens itself).
  // checkov:skip=CKV_AZURE_222: see `site` (access restrictions admit Front Door and Event Grid).
  // checkov:skip=CKV_AZURE_63: no App Service HTTP logs on Flex; requests are OpenTelemetry spans.
  // checkov:skip=CKV_AZURE_65: no App Service detailed errors on Flex (see CKV_AZURE_63).
  // checkov:skip=CKV_AZURE_66: no failed request tracing on Flex (see CKV_AZURE_63).
  parent: site
  // checkov:skip=CKV_AZURE_80: no .NET Framework: the app is Python 3.11.
  // checkov:skip=CKV_AZURE_88: Flex Consumption runs from a deployment package; no Azure Files.
  name: 'appsettings'
  properties: appSettings
}

// Publishing with basic (user/password) credentials is off: azd deploys with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
