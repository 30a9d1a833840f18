// The Front Door profile alone: its id (X-Azure-FDID) is needed by the regional apps'
// access restrictions before the routes to those apps exist (frontdoor.bicep).

param name string
param tags object

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: name
  location: 'global'
  tags: tags
  sku: { name: 'Standard_AzureFrontDoor' }
  // Chat streams and slow models: wait up to two minutes for a first byte.
  properties: { originResponseTimeoutSeconds: 120 }
}

output name string = profile.name
output frontDoorId string = profile.properties.frontDoorId
