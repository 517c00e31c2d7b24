using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Load;

/// <summary>One connection's worth of load: sends one request and reads its whole response, reconnecting when needed.</summary>
internal interface ILoadClient : IAsyncDisposable
{
    ValueTask<Response> ExchangeAsync();

    /// <summary>Fails the exchange in progress (from another thread, on timeout) by closing the socket.</summary>
    void Abort();
}
