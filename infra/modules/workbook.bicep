// Monitoring as code, part 2: the docgate workbook (requests and latency by route, tokens and
// cost, cache hit rate, region health and failovers, ingestion, blocked injections). Its JSON is
// monitoring/workbook.json, built from the KQL pack by scripts/monitoring_workbook.py.

param location string
param tags object
param applicationInsightsId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'docgate-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'docgate operations'
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: loadTextContent('../../monitoring/workbook.json')
  }
}

output id string = workbook.id
