// Cosmos DB for NoSQL: one account in every region with multi-region writes, the `docgate`
// database and every container the code declares (shared.services.cosmos_containers): same
// names, partition keys and TTLs (tests/infra/test_bicep.py checks them against the code).
//
// Conflicts: every container resolves concurrent writes from two regions by last-writer-wins on
// `_ts`, chosen deliberately per container in docs/multi-region.md (the ledger and audit are
// insert-only, counters are repaired by the budget audit, breakers are observations).

param accountName string
param databaseName string
@description('Azure regions, first = the primary (failover priority 0).')
param regions array
param tags object
param appPrincipalId string
@description('TTL of the semantic cache container: CACHE_TTL_SECONDS, the same parameter.')
param cacheTtlSeconds int
@description('Vector size of chunk embeddings (the embedding model, or AZURE_OPENAI_EMBEDDING_DIMENSIONS).')
param embeddingDimensions int
@description('Autoscale ceiling of the database\'s shared throughput (it idles at 10% of it).')
param maxThroughput int = 1000
param zoneRedundant bool = false

// Built-in "Cosmos DB Built-in Data Contributor" (data plane: read and write items, no
// account management). Control-plane access stays with Azure RBAC.
var dataContributor = '00000000-0000-0000-0000-000000000002'
var lastWriterWins = { mode: 'LastWriterWins', conflictResolutionPath: '/_ts' }

// Every container the code declares: name, partition key path, default TTL (null: off).
var containers = [
  { name: 'documents', partitionKey: '/tenant', ttl: null, vector: false }
  { name: 'chunks', partitionKey: '/tenant', ttl: null, vector: true }
  { name: 'manifests', partitionKey: '/tenant', ttl: null, vector: false }
  { name: 'figures', partitionKey: '/id', ttl: null, vector: false }
  { name: 'breakers', partitionKey: '/id', ttl: null, vector: false }
  { name: 'rate_limits', partitionKey: '/id', ttl: 86400, vector: false }
  { name: 'budgets', partitionKey: '/id', ttl: null, vector: false }
  { name: 'usage', partitionKey: '/tenant', ttl: null, vector: false }
  { name: 'audit', partitionKey: '/tenant', ttl: null, vector: false }
  { name: 'semantic_cache', partitionKey: '/partition', ttl: cacheTtlSeconds, vector: false }
]

// RETRIEVAL_MODE=cosmos: `ORDER BY VectorDistance(c.embedding, @vector)` on chunks
// (shared/retrieval/search.py). DiskANN: large tenants; cosine, as the code's similarity.
var vectorPolicy = {
  vectorEmbeddingPolicy: {
    vectorEmbeddings: [
      { path: '/embedding', dataType: 'float32', distanceFunction: 'cosine', dimensions: embeddingDimensions }
    ]
  }
}
var plainIndexing = {
  indexingMode: 'consistent'
  automatic: true
  includedPaths: [{ path: '/*' }]
  excludedPaths: [{ path: '/"_etag"/?' }]
}
var vectorIndexing = union(plainIndexing, {
  excludedPaths: [{ path: '/"_etag"/?' }, { path: '/embedding/*' }]
  vectorIndexes: [{ path: '/embedding', type: 'diskANN' }]
})

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  // checkov:skip=CKV_AZURE_99: no virtual network in this template; the Flex apps reach Cosmos
  // over its public endpoint, with Entra ID only (disableLocalAuth: true).
  // checkov:skip=CKV_AZURE_101: same reason: public network access is needed without a VNet.
  // checkov:skip=CKV_AZURE_100: Microsoft-managed keys; a customer-managed key is a tenant
  // policy decision left to the deployer (it needs a Key Vault key and a Cosmos identity).
  name: accountName
  location: regions[0]
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    enableMultipleWriteLocations: true
    enableAutomaticFailover: true
    locations: [
      for (region, index) in regions: {
        locationName: region
        failoverPriority: index
        isZoneRedundant: zoneRedundant
      }
    ]
    capabilities: [{ name: 'EnableNoSQLVectorSearch' }]
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: { type: 'Continuous', continuousModeProperties: { tier: 'Continuous7Days' } }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: { id: databaseName }
    options: { autoscaleSettings: { maxThroughput: maxThroughput } }
  }
}

resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for container in containers: {
    parent: database
    name: container.name
    properties: {
      resource: union({
        id: container.name
        partitionKey: { paths: [container.partitionKey], kind: 'Hash', version: 2 }
        indexingPolicy: container.vector ? vectorIndexing : plainIndexing
        conflictResolutionPolicy: lastWriterWins
      }, container.ttl == null ? {} : { defaultTtl: container.ttl }, container.vector ? vectorPolicy : {})
    }
  }
]

resource appWritesData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid(account.id, appPrincipalId, dataContributor)
  properties: {
    principalId: appPrincipalId
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributor}'
    scope: '${account.id}/dbs/${databaseName}' // this database only
  }
}

output endpoint string = account.properties.documentEndpoint
output name string = account.name
