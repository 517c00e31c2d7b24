using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;

namespace Forwarder.L7;

/// <summary>A route ready for traffic: its config, its services resolved, its counters and its retry budget.</summary>
internal sealed class RouteModel
{
    private readonly ServiceModel[] _services;
    private readonly int[] _cumulativeWeights;

    public RouteModel(RouteConfig config, IReadOnlyDictionary<string, ServiceModel> services, HttpMetrics metrics)
    {
        Config = config;
        Metrics = metrics;
        Budget = new RetryBudget(config.Retry.BudgetPercent, config.Retry.MinConcurrent);
        var backends = config.Backends.Where(b => b.Weight > 0).ToArray();
        _services = [.. backends.Select(b => services[b.Service])];
        _cumulativeWeights = new int[backends.Length];
        var total = 0;
        for (var i = 0; i < backends.Length; i++)
        {
            total += backends[i].Weight;
            _cumulativeWeights[i] = total;
        }
    }

    public RouteConfig Config { get; }

    public HttpMetrics Metrics { get; }

    public RetryBudget Budget { get; }

    /// <summary>The service for one request: the only one, or one drawn in proportion to the split's weights.</summary>
    public ServiceModel PickService()
    {
        if (_services.Length == 1)
        {
            return _services[0];
        }

        var draw = Random.Shared.Next(_cumulativeWeights[^1]);
        var index = 0;
        while (draw >= _cumulativeWeights[index])
        {
            index++;
        }

        return _services[index];
    }
}
