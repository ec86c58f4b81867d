// The alerts an operator needs at 3 a.m.: dead letters appearing (in Service
// Bus and in the job store), the API health check failing, a lane's start lag
// breaking its deadline, and function failures. Every alert notifies the one
// action group passed in, if any.

@description('Required. Azure region of the log alert rules (the Application Insights region).')
param location string

@description('Required. Prefix of the rule names, e.g. dl-dev.')
param namePrefix string

@description('Required. Resource ID of the Application Insights component the log alerts query.')
param appInsightsId string

@description('Required. Resource IDs of the Service Bus namespaces, one per region.')
param serviceBusNamespaceIds array

@description('Optional. Resource ID of the action group every alert notifies; empty for none. Default: empty.')
param actionGroupId string = ''

@description('Required. The lanes; one start-lag alert each.')
param lanes array

@description('Required. Start deadline per lane, in seconds, as an object keyed by lane; the p95 start lag above it fires the lane\'s alert.')
param laneDeadlines object

@description('Optional. Failed function invocations per 15 minutes above which the function-failure alert fires. Default: 5.')
@minValue(0)
param functionFailureThreshold int = 5

@description('Optional. Tags added to every rule. Default: none.')
param tags object = {}

var metricActions = empty(actionGroupId)
  ? []
  : [
      {
        actionGroupId: actionGroupId
      }
    ]
var logActions = {
  actionGroups: empty(actionGroupId) ? [] : [actionGroupId]
}

// Each rule: name, severity (0 critical .. 4 verbose), query, row threshold.
var logRules = [
  {
    name: 'job-dead-lettered'
    displayName: 'Duralane: jobs dead-lettered'
    severity: 2
    query: 'traces | where message startswith "duralane.job.dead_lettered"'
    threshold: 0
  }
  {
    name: 'health-failing'
    displayName: 'Duralane: API health check failing'
    severity: 1
    query: 'traces | where message startswith "duralane.healthcheck.failing"'
    threshold: 0
  }
  {
    // In Azure the Functions host records each invocation as a requests row,
    // success false when the function raised; its exception also lands in
    // exceptions, so counting requests counts each failure once. The embedded
    // runtime has no host: its timer triggers log duralane.function.failed.
    name: 'function-failures'
    displayName: 'Duralane: function failures'
    severity: 2
    query: 'union (requests | where success == false), (traces | where message startswith "duralane.function.failed")'
    threshold: functionFailureThreshold
  }
]

resource deadLetterAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [for (namespaceId, i) in serviceBusNamespaceIds: {
  name: '${namePrefix}-servicebus-dead-letters-${i}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages are sitting in a jobs-<lane> dead-letter subqueue of Service Bus namespace ${i}.'
    severity: 2
    enabled: true
    scopes: [
      namespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadLetteredMessages'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    autoMitigate: true
    actions: metricActions
  }
}]

resource logAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in logRules: {
  name: '${namePrefix}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: rule.displayName
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: rule.threshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: logActions
  }
}]

// One row, and so one alert, when the lane's p95 start lag over the window is
// above its deadline.
resource startLagAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for lane in lanes: {
  name: '${namePrefix}-start-lag-${lane}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Duralane: ${lane} lane start lag above its deadline'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'traces | where message startswith "duralane.job.started" | where tostring(customDimensions.lane) == "${lane}" | summarize p95LagMs = percentile(todouble(customDimensions.startLagMs), 95) | where p95LagMs > ${laneDeadlines[lane] * 1000}'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: logActions
  }
}]
