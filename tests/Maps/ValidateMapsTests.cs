using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Loading;
using BpfJit.Runtime.Maps;
using BpfJit.Tests.Support;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.Maps;

/// <summary>
/// <see cref="BpfCollection.ValidateMaps"/>, the map step of a load without making anything live (what <c>bpfjit verify</c>
/// and <c>cfg</c> check): the error <see cref="BpfCollection.Load(CollectionSpec, CollectionOptions?)"/> throws for the
/// same object, memory counted across the object's maps as their creation charges it, and no map created.
/// </summary>
[TestFixture, NonParallelizable]
public class ValidateMapsTests : MapMemoryLimitFixture
{
    static string Object(string dir, string name) => Path.Combine(Paths.RepoRoot, "tests", dir, name + ".o");

    static string MapsObject(string name) => Object(Path.Combine("Maps", "objects"), name);

    /// <summary>The dispatcher with its open map sized as a host sizes it: four maps of different sizes.</summary>
    static CollectionSpec Dispatcher()
    {
        var spec = ObjectFile.Load(Object("programs", "dispatcher"));
        var destinations = spec.Maps.Single(m => m.Name == "destinations");
        destinations.KeySize = 257;
        destinations.ValueSize = 8;
        return spec;
    }

    static CollectionLoadException LoadError(CollectionSpec spec) =>
        Assert.Throws<CollectionLoadException>(() => BpfCollection.Load(spec, new CollectionOptions { Programs = [] }).Dispose())!;

    [Test]
    public void A_map_the_kernel_refuses_is_the_error_a_load_throws()
    {
        var spec = ObjectFile.Load(Object("programs", "dispatcher"));   // 'destinations' left at key_size 0
        var validated = Assert.Throws<CollectionLoadException>(() => BpfCollection.ValidateMaps(spec))!;
        var loaded = LoadError(spec);
        Assert.That(validated.Step, Is.EqualTo(CollectionLoadStep.Maps));
        Assert.That(validated.MapName, Is.EqualTo("destinations"));
        Assert.That(validated.InnerException, Is.TypeOf<MapCreateException>().With.Property("Errno").EqualTo(Errno.EINVAL));
        Assert.That(validated.Message, Is.EqualTo(loaded.Message));
        // A host's edit of the definition is validated as Load creates it.
        var options = new CollectionOptions { MapDefinition = (m, d) => m.Name == "destinations" ? d with { KeySize = 257, ValueSize = 8 } : d };
        Assert.DoesNotThrow(() => BpfCollection.ValidateMaps(spec, options));
        // A replaced map is not the object's to create.
        using var given = MapFactory.Create(MapType.Hash, 257, 8, 16, name: "destinations");
        Assert.DoesNotThrow(() => BpfCollection.ValidateMaps(spec, new CollectionOptions { MapReplacements = new Dictionary<string, BpfMap> { ["destinations"] = given } }));
    }

    [Test]
    public void The_objects_maps_are_counted_together_against_the_memory_limit_as_their_creation_charges_them()
    {
        var spec = Dispatcher();
        ulong total = 0;
        foreach (var m in spec.Maps) total += MapMemory.Footprint(MapAttributes.Of(ObjectMaps.Definition(m)));
        ulong largest = spec.Maps.Max(m => MapMemory.Footprint(MapAttributes.Of(ObjectMaps.Definition(m))));
        // Each map fits alone; together they do not.
        MapMemory.Limit = MapMemory.Charged + (long)total - 1;
        Assert.That(largest, Is.LessThan((ulong)MapMemory.Limit));
        var validated = Assert.Throws<CollectionLoadException>(() => BpfCollection.ValidateMaps(spec))!;
        var loaded = LoadError(spec);
        Assert.That(validated.MapName, Is.EqualTo(spec.Maps[^1].Name), "the last map is the one that does not fit");
        Assert.That(((MapCreateException)validated.InnerException!).Errno, Is.EqualTo(Errno.ENOMEM));
        Assert.That(validated.Message, Is.EqualTo(loaded.Message));
        MapMemory.Limit = MapMemory.Charged + (long)total;
        Assert.DoesNotThrow(() => BpfCollection.ValidateMaps(spec));
    }

    [Test]
    public void A_1_GiB_map_is_counted_not_created()
    {
        var spec = ObjectFile.Load(MapsObject("bss_1g"));
        long charged = MapMemory.Charged;
        using var before = MapFactory.Create(MapType.Array, 4, 8, 1);
        BpfCollection.ValidateMaps(spec);
        using var after = MapFactory.Create(MapType.Array, 4, 8, 1);
        Assert.That(after.Id, Is.EqualTo(before.Id + 1), "no map was made between the two");
        Assert.That(MapMemory.Charged, Is.EqualTo(charged + 2 * (long)MapMemory.Footprint(MapAttributes.Of(before.Definition))), "nothing else charged");
    }
}
