// Azure Front Door (Standard) in front of every regional app: one endpoint, one origin group
// probing GET /api/health (anonymous; 503 when a dependency is down), latency-based routing
// among healthy origins, and a WAF policy (Microsoft managed rules need Premium; Standard gets
// custom rules: a per-client rate limit as a first line before docgate's own limits).

@description('The profile (frontdoor-profile.bicep), created before the apps that trust its id.')
param profileName string
param endpointName string
param tags object
@description('Default host names of the regional Function Apps.')
param originHostNames array
param wafRateLimitPerMinute int = 600

resource profile 'Microsoft.Cdn/profiles@2024-02-01' existing = {
  name: profileName
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: endpointName
  location: 'global'
  tags: tags
  properties: { enabledState: 'Enabled' }
}

resource origins 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'docgate-regions'
  properties: {
    loadBalancingSettings: { sampleSize: 4, successfulSamplesRequired: 3, additionalLatencyInMilliseconds: 50 }
    healthProbeSettings: {
      probePath: '/api/health'
      probeRequestType: 'GET'
      probeProtocol: 'Https'
      probeIntervalInSeconds: 30
    }
    sessionAffinityState: 'Disabled'
  }
}

resource regional 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = [
  for (host, index) in originHostNames: {
    parent: origins
    name: 'region-${index}'
    properties: {
      hostName: host
      originHostHeader: host
      httpsPort: 443
      priority: 1
      weight: 1000
      enabledState: 'Enabled'
      enforceCertificateNameCheck: true
    }
  }
]

resource route 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'api'
  properties: {
    originGroup: { id: origins.id }
    supportedProtocols: ['Https']
    patternsToMatch: ['/api/*']
    forwardingProtocol: 'HttpsOnly'
    httpsRedirect: 'Disabled'
    linkToDefaultDomain: 'Enabled'
  }
  dependsOn: [regional]
}

resource waf 'Microsoft.Network/FrontDoorWebApplicationFirewallPolicies@2024-02-01' = {
  name: replace('${profileName}waf', '-', '')
  location: 'global'
  tags: tags
  sku: { name: 'Standard_AzureFrontDoor' }
  properties: {
    policySettings: { enabledState: 'Enabled', mode: 'Prevention' }
    customRules: {
      rules: [
        {
          name: 'PerClientRateLimit'
          priority: 100
          ruleType: 'RateLimitRule'
          rateLimitDurationInMinutes: 1
          rateLimitThreshold: wafRateLimitPerMinute
          action: 'Block'
          matchConditions: [
            { matchVariable: 'RequestUri', operator: 'Any', negateCondition: false, matchValue: [] }
          ]
        }
      ]
    }
  }
}

resource security 'Microsoft.Cdn/profiles/securityPolicies@2024-02-01' = {
  parent: profile
  name: 'waf'
  properties: {
    parameters: {
      type: 'WebApplicationFirewall'
      wafPolicy: { id: waf.id }
      associations: [{ domains: [{ id: endpoint.id }], patternsToMatch: ['/*'] }]
    }
  }
}

output hostName string = endpoint.properties.hostName
