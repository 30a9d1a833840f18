// Blob events for the Flex Consumption blob trigger (`source=EventGrid` in function_app.py):
// an Event Grid system topic on the data account and a subscription delivering the uploads
// container's BlobCreated events to the ingestion app's blob extension webhook.
//
// The webhook's key (`blobs_extension`) exists only once the code is deployed and the host has
// indexed the trigger, so the subscription is created on the provision that follows the first
// deploy (`subscribeWebhook`, set by the azd postdeploy hook). The key is read inside the
// deployment with listKeys: it is never a parameter or an output.

param name string
param location string
param tags object
param storageAccountId string
param storageAccountName string
param uploadsContainer string
param deadLetterContainer string
@description('Function App (resource name) whose blob trigger ingests uploads.')
param functionAppName string
@description('Host name of that app (its default host name).')
param functionAppHostName string
@description('The blob trigger function\'s name in function_app.py.')
param functionName string = 'on_upload'
param subscribeWebhook bool

var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource deadLetters 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${storageAccountName}/default/${deadLetterContainer}'
}

// Undeliverable events are kept (never lost): the topic writes them to the dead-letter
// container with its own identity, contributor on that container only.
resource topicWritesDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetters.id, topic.id, blobDataContributor)
  scope: deadLetters
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource uploads 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (subscribeWebhook) {
  parent: topic
  name: 'uploads-to-${functionName}'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionAppHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${listKeys('${app.id}/host/default', '2024-04-01').systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${uploadsContainer}/'
    }
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: storage.id, blobContainerName: deadLetterContainer }
      }
    }
  }
  dependsOn: [topicWritesDeadLetters]
}

output topicName string = topic.name
