namespace Forwarder.Runtime;

/// <content>Applying a new cluster state from discovery, through the path a file reload takes.</content>
internal sealed partial class ProxyRuntime
{
    /// <summary>Rebuilds the running config from the file's and the current cluster state; listeners keep their sockets.</summary>
    public async Task<bool> ApplyClusterAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await ApplyAsync(null, cancellationToken).ConfigureAwait(false);
        }
        catch (ListenerBindException ex)
        {
            // Listeners come from the file and are bound already; an access log that cannot be opened again fails it. The running config stays.
            LogReloadFailed(logger, "the cluster state", ex.Message);
            return false;
        }
    }
}
