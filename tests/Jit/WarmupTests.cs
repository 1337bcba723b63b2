using BpfJit.IlEmitter;
using BpfJit.Runtime.Maps;

namespace BpfJit.Tests.Jit;

/// <summary>
/// <see cref="Warmup"/> runs the whole pipeline (ELF, maps, verifier, JIT, a run) on its built-in object and
/// releases what it made; a host may call it more than once, on its own thread or on a background one.
/// </summary>
public class WarmupTests
{
    [Test]
    public void RunsThePipelineAgainAndInTheBackground()
    {
        Warmup.Run();
        Warmup.Run();
        Assert.That(Warmup.Start().Wait(TimeSpan.FromMinutes(5)), Is.True, "the background warm-up finished");
    }

    [Test]
    public void ReleasesItsMaps()
    {
        Warmup.Run(); // the first run's one-time allocations (per-CPU counts, helper tables) are not the maps'
        MapEpoch.Collect();
        long before = MapMemory.Charged;
        Warmup.Run();
        MapEpoch.Collect(); // maps are freed after a grace period
        Assert.That(MapMemory.Charged, Is.EqualTo(before), "every map the warm-up created was released");
    }
}
