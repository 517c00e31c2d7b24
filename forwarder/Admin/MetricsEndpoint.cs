using Forwarder.Metrics;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Http;

namespace Forwarder.Admin;

/// <summary>
/// GET /metrics. A scrape of a config with thousands of services costs megabytes and CPU, so at
/// most <see cref="MaxConcurrentScrapes"/> render at once; another waits briefly for a slot, then
/// gets 429. The text goes to the client as it is rendered, never held whole.
/// </summary>
internal sealed class MetricsEndpoint(ForwarderMetrics metrics, ProxyRuntime runtime, ConnectionTracker tracker) : IDisposable
{
    public const int MaxConcurrentScrapes = 2;

    /// <summary>Long enough to ride out a scraper's retry overlapping its previous scrape, short of its timeout.</summary>
    private static readonly TimeSpan SlotWait = TimeSpan.FromSeconds(1);

    private const int FlushThreshold = 32 * 1024;

    private readonly SemaphoreSlim _slots = new(MaxConcurrentScrapes, MaxConcurrentScrapes);

    public async Task HandleAsync(HttpContext context)
    {
        var aborted = context.RequestAborted;
        if (!await _slots.WaitAsync(SlotWait, aborted).ConfigureAwait(false))
        {
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            context.Response.Headers.RetryAfter = "1";
            await context.Response.WriteAsync($"{MaxConcurrentScrapes} scrapes are in progress already; retry later\n", aborted).ConfigureAwait(false);
            return;
        }

        try
        {
            context.Response.ContentType = PrometheusWriter.ContentType;
            var body = context.Response.BodyWriter;
            var text = new MetricsText(body);
            foreach (var _ in PrometheusWriter.Render(text, metrics, runtime, tracker.Count))
            {
                if (text.Unflushed >= FlushThreshold)
                {
                    text.MarkFlushed();
                    if ((await body.FlushAsync(aborted).ConfigureAwait(false)).IsCompleted)
                    {
                        return;
                    }
                }
            }
        }
        finally
        {
            _slots.Release();
        }
    }

    public void Dispose() => _slots.Dispose();
}
