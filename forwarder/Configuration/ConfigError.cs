namespace Forwarder.Configuration;

/// <summary>One problem in a config file, located by file, line, column and field path.</summary>
internal sealed record ConfigError(string File, int Line, int Column, string Field, string Message)
{
    public override string ToString()
        => Field.Length == 0 ? $"{File}:{Line}:{Column}: {Message}" : $"{File}:{Line}:{Column}: {Field}: {Message}";
}

/// <summary>Thrown when a config cannot be used; carries every error found, not just the first.</summary>
internal sealed class ConfigException(IReadOnlyList<ConfigError> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
