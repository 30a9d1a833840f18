// Monitoring as code, part 1: log alerts on Application Insights and the action group they
// notify. Each alert's query is a file in monitoring/alerts/ (loaded at compile time), written
// with the metric and attribute names of shared/telemetry/names.py; tests/test_telemetry.py
// checks those names against what a real ingestion and chat export. README "Operate" says what
// each alert means and what to do.

param namePrefix string
param tags object
param applicationInsightsId string
@description('E-mail addresses notified by every alert.')
param alertEmails array = []
@description('Webhooks notified by every alert (common alert schema): [{name, uri}].')
param alertWebhooks array = []
param errorRatePercent int = 5
param p95LatencyMs int = 8000
param ingestionFailuresPerHour int = 5
param rateLimitRejectionsPer15Minutes int = 100
param costPerHourUsd int = 20

resource group 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'docgate-ops'
    enabled: true
    emailReceivers: [
      for (address, index) in alertEmails: {
        name: 'email-${index}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: [
      for hook in alertWebhooks: {
        name: hook.name
        serviceUri: hook.uri
        useCommonAlertSchema: true
      }
    ]
  }
}

// name, severity (0 critical .. 4 verbose), query file, measured column, threshold, window.
var alerts = [
  {
    name: 'error-rate'
    title: 'docgate: 5xx error rate above ${errorRatePercent}%'
    severity: 1
    query: loadTextContent('../../monitoring/alerts/error-rate.kql')
    measure: 'error_rate'
    threshold: errorRatePercent
    window: 'PT15M'
  }
  {
    name: 'p95-latency'
    title: 'docgate: p95 request latency above ${p95LatencyMs} ms'
    severity: 2
    query: loadTextContent('../../monitoring/alerts/p95-latency.kql')
    measure: 'p95_ms'
    threshold: p95LatencyMs
    window: 'PT15M'
  }
  {
    name: 'breaker-open'
    title: 'docgate: an LLM region breaker is open'
    severity: 2
    query: loadTextContent('../../monitoring/alerts/breaker-open.kql')
    measure: 'open_regions'
    threshold: 0
    window: 'PT15M'
  }
  {
    name: 'all-regions-unavailable'
    title: 'docgate: every LLM region is unavailable'
    severity: 0
    query: loadTextContent('../../monitoring/alerts/all-regions-unavailable.kql')
    measure: 'all_unavailable'
    threshold: 0
    window: 'PT15M'
  }
  {
    name: 'budget-80'
    title: 'docgate: a budget is at 80%'
    severity: 3
    query: loadTextContent('../../monitoring/alerts/budget-utilisation.kql')
    measure: 'ratio'
    threshold: json('0.79')
    window: 'PT2H'
  }
  {
    name: 'budget-100'
    title: 'docgate: a budget is exhausted (100%)'
    severity: 1
    query: loadTextContent('../../monitoring/alerts/budget-utilisation.kql')
    measure: 'ratio'
    threshold: json('0.99')
    window: 'PT2H'
  }
  {
    name: 'ingestion-failures'
    title: 'docgate: more than ${ingestionFailuresPerHour} ingestion failures in an hour'
    severity: 2
    query: loadTextContent('../../monitoring/alerts/ingestion-failures.kql')
    measure: 'failures'
    threshold: ingestionFailuresPerHour
    window: 'PT1H'
  }
  {
    name: 'rate-limit-spike'
    title: 'docgate: rate-limit rejections spiking'
    severity: 3
    query: loadTextContent('../../monitoring/alerts/rate-limit-rejections.kql')
    measure: 'rejections'
    threshold: rateLimitRejectionsPer15Minutes
    window: 'PT15M'
  }
  {
    name: 'cost-per-hour'
    title: 'docgate: model cost above ${costPerHourUsd} USD in an hour'
    severity: 2
    query: loadTextContent('../../monitoring/alerts/cost-per-hour.kql')
    measure: 'cost_usd'
    threshold: costPerHourUsd
    window: 'PT1H'
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for alert in alerts: {
    name: '${namePrefix}-${alert.name}'
    location: resourceGroup().location
    tags: tags
    properties: {
      displayName: alert.title
      description: 'README "Operate": ${alert.name}'
      severity: alert.severity
      enabled: true
      scopes: [applicationInsightsId]
      evaluationFrequency: 'PT5M'
      windowSize: alert.window
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Maximum'
            metricMeasureColumn: alert.measure
            operator: 'GreaterThan'
            threshold: alert.threshold
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      autoMitigate: true
      actions: { actionGroups: [group.id] }
    }
  }
]

output actionGroupId string = group.id
