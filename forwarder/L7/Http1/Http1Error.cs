namespace Forwarder.L7.Http1;

/// <summary>Why a request was refused: the status to answer with (the connection is then closed) and a reason for the log.</summary>
internal readonly record struct Http1Error(int Status, string Reason)
{
    public static Http1Error BadRequest(string reason) => new(400, reason);
}
