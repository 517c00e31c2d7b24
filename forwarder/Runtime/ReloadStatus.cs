namespace Forwarder.Runtime;

/// <summary>The outcome of the last attempt to load the config, as shown by /config.</summary>
internal sealed record ReloadStatus(
    DateTimeOffset AttemptedAt,
    bool Succeeded,
    IReadOnlyList<string> Errors,
    IReadOnlyList<string> Warnings,
    DateTimeOffset? AppliedAt);
