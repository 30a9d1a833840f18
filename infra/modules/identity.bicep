// The one user-assigned managed identity every regional Function App runs as. Every data-plane
// permission docgate has is a role assignment to this identity, made beside the resource it
// grants (storage.bicep, cosmos.bicep, keyvault.bicep, ...): no keys, no connection strings.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
