using System.Diagnostics;
using Forwarder.Bench.Scenarios;

namespace Forwarder.Bench.Tests.Scenarios;

public sealed class LoadPlanTests
{
    private static readonly Func<ScenarioContext, ValueTask<Response>> Noop = _ => ValueTask.FromResult(Response.Ok());

    [Fact]
    public void ConstantInjection_TicketsAreEvenlySpacedAndCountedExactly()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop).WithLoadSimulations(LoadSimulation.Inject(100, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));
        plan.Start(0);
        var phase = Assert.Single(plan.Phases);

        var tickets = Tickets(phase);

        Assert.Equal(200, tickets.Length);
        Assert.Equal(0, tickets[0]);
        Assert.All(tickets.Zip(tickets.Skip(1)), pair => Assert.InRange(pair.Second - pair.First, (Stopwatch.Frequency / 100) - 1, (Stopwatch.Frequency / 100) + 1));
        Assert.Equal(100, plan.RequestedRate!.Value, 3);
    }

    [Fact]
    public void TakeRemainingTickets_AfterSomeWereTaken_ReturnsTheRestAndEndsTheHandOut()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop).WithLoadSimulations(LoadSimulation.Inject(100, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));
        plan.Start(0);
        var phase = Assert.Single(plan.Phases);
        for (var i = 0; i < 30; i++)
        {
            Assert.True(phase.TryTakeTicket(out _));
        }

        var (first, end) = phase.TakeRemainingTickets();

        Assert.Equal((30, 200), (first, end));
        Assert.Equal(Stopwatch.Frequency * 30 / 100, phase.IntendedStartOf(first), Stopwatch.Frequency / 1000.0);
        Assert.False(phase.TryTakeTicket(out _));
        Assert.Equal((200L, 200L), phase.TakeRemainingTickets());
    }

    [Fact]
    public void RampingInjection_RampsFromThePreviousRate()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop).WithLoadSimulations(
            LoadSimulation.Inject(100, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)),
            LoadSimulation.RampingInject(300, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));
        plan.Start(0);

        var ramp = Tickets(plan.Phases[1]);

        // From 100/s to 300/s over 2 s: 400 invocations, denser at the end.
        Assert.Equal(400, ramp.Length);
        Assert.True(ramp[0] >= plan.Phases[1].Begin);
        var firstGap = ramp[1] - ramp[0];
        var lastGap = ramp[^1] - ramp[^2];
        Assert.InRange(firstGap / (double)lastGap, 2.5, 3.1);
        Assert.All(ramp, t => Assert.True(t < plan.Phases[1].End));
    }

    [Fact]
    public void WarmUp_RunsTheFirstPhasesLoadBeforeMeasuring()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop)
            .WithLoadSimulations(LoadSimulation.KeepConstant(8, TimeSpan.FromSeconds(3)))
            .WithWarmUpDuration(TimeSpan.FromSeconds(1)));
        plan.Start(1000);

        Assert.Equal(2, plan.Phases.Count);
        Assert.Equal(8, plan.Phases[0].CopiesAt(1000));
        Assert.Equal(1000 + Stopwatch.Frequency, plan.MeasureStart);
        Assert.Equal(TimeSpan.FromSeconds(3), plan.Measured);
        Assert.Equal(8, plan.Workers);
        Assert.Null(plan.RequestedRate);
    }

    [Fact]
    public void RampingConstant_CopiesGrowLinearly()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop).WithLoadSimulations(LoadSimulation.RampingConstant(10, TimeSpan.FromSeconds(10))));
        plan.Start(0);
        var phase = plan.Phases[0];

        Assert.Equal(0, phase.CopiesAt(0));
        Assert.Equal(5, phase.CopiesAt(5 * Stopwatch.Frequency));
        Assert.Equal(10, phase.CopiesAt(10 * Stopwatch.Frequency));
        Assert.Equal(10, plan.Workers);
    }

    [Fact]
    public void Pause_HandsOutNoTickets()
    {
        var plan = LoadPlan.Create(Scenario.Create("s", Noop).WithLoadSimulations(LoadSimulation.Pause(TimeSpan.FromSeconds(1))));
        plan.Start(0);

        Assert.Empty(Tickets(plan.Phases[0]));
    }

    private static long[] Tickets(LoadPhase phase)
    {
        List<long> tickets = [];
        while (phase.TryTakeTicket(out var intended))
        {
            tickets.Add(intended);
        }

        return [.. tickets];
    }
}
