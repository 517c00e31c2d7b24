namespace Forwarder.Bench.Scenarios;

/// <summary>What one invocation of a scenario (or one step) came to.</summary>
/// <param name="StatusCode">A protocol status to count by (HTTP status), or null.</param>
/// <param name="SizeBytes">Bytes exchanged, for the report's throughput.</param>
/// <param name="Message">Why it failed.</param>
internal readonly record struct Response(bool IsOk, int? StatusCode, long SizeBytes, string? Message)
{
    public static Response Ok(int? statusCode = null, long sizeBytes = 0) => new(true, statusCode, sizeBytes, null);

    public static Response Fail(string message, int? statusCode = null, long sizeBytes = 0) => new(false, statusCode, sizeBytes, message);
}
