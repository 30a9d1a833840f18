// The Azure AI services ingestion and chat call besides Azure OpenAI: Document Intelligence
// (layout and OCR of scanned or complex pages), AI Vision (figure descriptions) and, optionally,
// Content Safety (Prompt Shields). One of each, in the primary region; keys off, the app gets
// "Cognitive Services User" on each (call the APIs; no key listing, no management).

param namePrefix string
param location string
param tags object
param appPrincipalId string
param deployContentSafety bool
@description('Image Analysis captions exist in a few regions only (East US, France Central, West Europe, ...).')
param visionLocation string = location

var cognitiveServicesUser = 'a97b65f3-24c7-4388-baec-2e87135dc908'
var required = [
  { kind: 'FormRecognizer', name: '${namePrefix}-di', location: location }
  { kind: 'ComputerVision', name: '${namePrefix}-vision', location: visionLocation }
]
var optional = [{ kind: 'ContentSafety', name: '${namePrefix}-safety', location: location }]
var services = deployContentSafety ? concat(required, optional) : required

resource accounts 'Microsoft.CognitiveServices/accounts@2024-10-01' = [
  for service in services: {
    // checkov:skip=CKV_AZURE_134: no virtual network in this template; public endpoint, Entra ID only.
    // checkov:skip=CKV2_AZURE_22: Microsoft-managed keys; a customer-managed key is left to the deployer.
    name: service.name
    location: service.location
    tags: tags
    kind: service.kind
    sku: { name: 'S0' }
    identity: { type: 'SystemAssigned' }
    properties: {
      customSubDomainName: service.name
      disableLocalAuth: true
      publicNetworkAccess: 'Enabled'
      networkAcls: { defaultAction: 'Allow' }
    }
  }
]

resource appCallsServices 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (service, index) in services: {
    name: guid(accounts[index].id, appPrincipalId, cognitiveServicesUser)
    scope: accounts[index]
    properties: {
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesUser)
    }
  }
]

output documentIntelligenceEndpoint string = accounts[0].properties.endpoint
output visionEndpoint string = accounts[1].properties.endpoint
output contentSafetyEndpoint string = deployContentSafety ? accounts[2].properties.endpoint : ''
