// One region's Azure OpenAI account with the chat deployments and the embeddings deployment.
// Keys are off (disableLocalAuth): the app calls with its managed identity, which gets
// "Cognitive Services OpenAI User" (inference only; no deployment or key management).

param name string
param location string
param tags object
param appPrincipalId string
@description('Chat deployments: [{model, version, capacity}]; the deployment is named after the model.')
param chatModels array
param embeddingModel string
param embeddingModelVersion string
param embeddingCapacity int
@description('GlobalStandard routes inside Microsoft\'s global pool (highest quota); Standard keeps data in the region.')
param deploymentSku string = 'GlobalStandard'

var openAiUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_134: no virtual network in this template; public endpoint, Entra ID only.
  // checkov:skip=CKV2_AZURE_22: Microsoft-managed keys; a customer-managed key is left to the deployer.
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  identity: { type: 'SystemAssigned' }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow' }
  }
}

// Deployments of one account are created one at a time (the service rejects parallel ones).
@batchSize(1)
resource chat 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [
  for model in chatModels: {
    parent: account
    name: model.model
    sku: { name: deploymentSku, capacity: model.capacity }
    properties: {
      model: { format: 'OpenAI', name: model.model, version: model.version }
      raiPolicyName: 'Microsoft.DefaultV2'
    }
  }
]

resource embeddings 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: embeddingModel
  sku: { name: deploymentSku, capacity: embeddingCapacity }
  properties: {
    model: { format: 'OpenAI', name: embeddingModel, version: embeddingModelVersion }
  }
  dependsOn: [chat]
}

resource appCallsModels 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, openAiUser)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', openAiUser)
  }
}

output endpoint string = account.properties.endpoint
