using System.Collections;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.Transports.Features;

/// <summary>
/// The features of a connection that implements them all itself: a lookup in the fixed list of
/// those interfaces, and a dictionary made only when a caller sets a feature. A
/// <see cref="FeatureCollection"/> filled with the same entries costs a dictionary per connection
/// (about 400 bytes), which thousands of idle connections would all carry.
/// </summary>
public sealed class OwnFeatureCollection(object owner, Type[] implemented) : IFeatureCollection
{
    // A feature set by a caller, or null where a caller removed one of the owner's.
    private Dictionary<Type, object?>? _set;
    private int _revision;

    public bool IsReadOnly => false;

    public int Revision => _revision;

    public object? this[Type key]
    {
        get
        {
            if (_set is not null && _set.TryGetValue(key, out var value))
            {
                return value;
            }

            return Array.IndexOf(implemented, key) >= 0 ? owner : null;
        }

        set
        {
            (_set ??= []).Remove(key);
            if (value is not null || Array.IndexOf(implemented, key) >= 0)
            {
                _set[key] = value;
            }

            _revision++;
        }
    }

    public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];

    public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        if (_set is not null)
        {
            foreach (var (type, value) in _set)
            {
                if (value is not null)
                {
                    yield return new(type, value);
                }
            }
        }

        foreach (var type in implemented)
        {
            if (_set is null || !_set.ContainsKey(type))
            {
                yield return new(type, owner);
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
