namespace Forwarder.Bench.Scenarios;

/// <summary>What one invocation of a scenario (or one step) came to.</summary>
/// <param name="IsOk">It succeeded; a failure counts in the error rate.</param>
/// <param name="StatusCode">A protocol status to count by (HTTP status), or null.</param>
/// <param name="SizeBytes">Bytes exchanged, for the report's throughput.</param>
/// <param name="Message">Why it failed: failures are counted by message.</param>
public readonly record struct Response(bool IsOk, int? StatusCode, long SizeBytes, string? Message)
{
    /// <summary>A success, with the status and size to count it under.</summary>
    public static Response Ok(int? statusCode = null, long sizeBytes = 0) => new(true, statusCode, sizeBytes, null);

    /// <summary>A failure, counted under <paramref name="message"/> (and <paramref name="statusCode"/> if given).</summary>
    public static Response Fail(string message, int? statusCode = null, long sizeBytes = 0) => new(false, statusCode, sizeBytes, message);
}
