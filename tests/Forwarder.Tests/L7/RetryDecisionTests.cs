using Forwarder.Configuration;
using Forwarder.L7;

namespace Forwarder.Tests.L7;

public sealed class RetryDecisionTests
{
    private static readonly RetryPolicy ResetAnd503 = new(Attempts: 2, RetryOn.Reset | RetryOn.Status503, BudgetPercent: 100, MinConcurrent: 10);

    [Theory]
    [InlineData((int)AttemptFailure.StaleReset)]
    [InlineData((int)AttemptFailure.Reset)]
    [InlineData((int)AttemptFailure.Timeout)]
    [InlineData((int)AttemptFailure.Status)]
    public void Next_NonIdempotentRequestAfterItWasSent_GivesUp(int failure)
    {
        var retry = new RetryDecision(ResetAnd503 with { On = RetryOn.Reset | RetryOn.Timeout | RetryOn.Status5xx }, new RetryBudget(100, 10), connectAttempts: 3, idempotent: false);

        Assert.Equal(RetryVerdict.GiveUp, retry.Next((AttemptFailure)failure, 503, replayable: true));
    }

    [Fact]
    public void Next_ConnectFailure_AnyRequestGoesElsewhere_UpToConnectAttempts_WithoutCountingARetry()
    {
        var retry = new RetryDecision(ResetAnd503, new RetryBudget(0, 0), connectAttempts: 3, idempotent: false);

        Assert.Equal(RetryVerdict.RetryElsewhere, retry.Next(AttemptFailure.Connect, 503, replayable: true));
        Assert.Equal(RetryVerdict.RetryElsewhere, retry.Next(AttemptFailure.Connect, 503, replayable: true));
        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Connect, 503, replayable: true));
        Assert.Equal(0, retry.Retries);
    }

    [Fact]
    public void Next_StaleConnection_IdempotentRequestIsResentOnce_ThenTreatedAsAReset()
    {
        var retry = new RetryDecision(ResetAnd503 with { Attempts = 0 }, new RetryBudget(100, 10), connectAttempts: 3, idempotent: true);

        Assert.Equal(RetryVerdict.ResendStale, retry.Next(AttemptFailure.StaleReset, 0, replayable: true));
        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.StaleReset, 0, replayable: true));
    }

    [Fact]
    public void Next_IdempotentRequest_RetriedOnlyOnWhatRetriesOnNames_UpToAttempts()
    {
        var retry = new RetryDecision(ResetAnd503, new RetryBudget(100, 10), connectAttempts: 3, idempotent: true);

        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Timeout, 504, replayable: true));
        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Status, 502, replayable: true));
        Assert.Equal(RetryVerdict.RetryElsewhere, retry.Next(AttemptFailure.Status, 503, replayable: true));
        Assert.Equal(RetryVerdict.RetryElsewhere, retry.Next(AttemptFailure.Reset, 502, replayable: true));
        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Reset, 502, replayable: true));
        Assert.Equal(2, retry.Retries);
    }

    [Fact]
    public void Next_BodyAlreadyRead_IsNotReplayed()
    {
        var retry = new RetryDecision(ResetAnd503, new RetryBudget(100, 10), connectAttempts: 3, idempotent: true);

        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Connect, 503, replayable: false));
        Assert.Equal(RetryVerdict.GiveUp, retry.Next(AttemptFailure.Reset, 502, replayable: false));
    }

    [Fact]
    public void Next_Budget_OneSlotPerRequestHeldUntilReleased()
    {
        var budget = new RetryBudget(percent: 0, minConcurrent: 1);
        var first = new RetryDecision(ResetAnd503, budget, connectAttempts: 1, idempotent: true);
        var second = new RetryDecision(ResetAnd503, budget, connectAttempts: 1, idempotent: true);

        Assert.Equal(RetryVerdict.RetryElsewhere, first.Next(AttemptFailure.Reset, 502, replayable: true));
        Assert.Equal(RetryVerdict.RetryElsewhere, first.Next(AttemptFailure.Reset, 502, replayable: true));
        Assert.Equal(RetryVerdict.GiveUp, second.Next(AttemptFailure.Reset, 502, replayable: true));

        first.Release();
        Assert.Equal(RetryVerdict.RetryElsewhere, second.Next(AttemptFailure.Reset, 502, replayable: true));
        second.Release();
        Assert.True(budget.TryStartRetry());
    }
}
