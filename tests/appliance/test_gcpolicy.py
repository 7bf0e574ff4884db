import gc

from appliance import gcpolicy


def test_serving_policy_freezes_startup_objects_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        startup_object = {"long": "lived"}
        gcpolicy.tune_for_serving()
        assert gc.get_threshold()[0] == gcpolicy.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0 and startup_object
        cycle = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1   # cycles made later are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
