using Forwarder.Transports.Features;
using Microsoft.AspNetCore.Connections.Features;

namespace Forwarder.Transports.Tests.Features;

public sealed class OwnFeatureCollectionTests
{
    private sealed class Owner : IConnectionIdFeature, IConnectionItemsFeature
    {
        public string ConnectionId { get; set; } = "c1";

        public IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();
    }

    private sealed class OtherId : IConnectionIdFeature
    {
        public string ConnectionId { get; set; } = "other";
    }

    private readonly Owner _owner = new();
    private readonly OwnFeatureCollection _features;

    public OwnFeatureCollectionTests() => _features = new OwnFeatureCollection(_owner, [typeof(IConnectionIdFeature), typeof(IConnectionItemsFeature)]);

    [Fact]
    public void Get_ListedFeature_IsTheOwner_OthersAreNull()
    {
        Assert.Same(_owner, _features.Get<IConnectionIdFeature>());
        Assert.Same(_owner, _features[typeof(IConnectionItemsFeature)]);
        Assert.Null(_features.Get<IConnectionLifetimeFeature>());
        Assert.Equal(2, _features.Count());
    }

    [Fact]
    public void Set_OverridesAddsAndRemoves_AndBumpsTheRevision()
    {
        var other = new OtherId();
        var revision = _features.Revision;

        _features.Set<IConnectionIdFeature>(other);
        _features.Set<IConnectionItemsFeature>(null);
        _features.Set<IConnectionLifetimeFeature>(null);

        Assert.Same(other, _features.Get<IConnectionIdFeature>());
        Assert.Null(_features.Get<IConnectionItemsFeature>());
        Assert.Equal(revision + 3, _features.Revision);
        Assert.Equal([new KeyValuePair<Type, object>(typeof(IConnectionIdFeature), other)], _features.ToList());

        _features.Set<IConnectionItemsFeature>(_owner);
        Assert.Same(_owner, _features.Get<IConnectionItemsFeature>());
    }
}
